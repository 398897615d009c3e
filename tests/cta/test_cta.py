"""Cross-Task Adapter: Eq. 2 against explicit per-head math, every variant, scopes, the identity (none)."""

import numpy as np
import pytest
import torch

from cta import BridgeAdapter, MultiHeadAttention, build_cta
from cta.config import CTA_MODES, CTAConfig

DIM, HEADS = 16, 4


def _numpy_mha(mha: MultiHeadAttention, query: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Direct multi-head attention, one head at a time, in float64 NumPy."""
    w = {
        n: (getattr(mha, n).weight.detach().double().numpy(), getattr(mha, n).bias.detach().double().numpy())
        for n in ("q_proj", "k_proj", "v_proj", "out_proj")
    }
    q = query @ w["q_proj"][0].T + w["q_proj"][1]
    k = key @ w["k_proj"][0].T + w["k_proj"][1]
    v = key @ w["v_proj"][0].T + w["v_proj"][1]
    d = mha.head_dim
    heads = []
    for h in range(mha.num_heads):
        sl = slice(h * d, (h + 1) * d)
        logits = q[:, sl] @ k[:, sl].T / np.sqrt(d)
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        heads.append(p @ v[:, sl])
    return np.concatenate(heads, -1) @ w["out_proj"][0].T + w["out_proj"][1]


def test_mha_matches_per_head_numpy():
    torch.manual_seed(0)
    mha = MultiHeadAttention(DIM, HEADS)
    query, key = torch.randn(2, 5, DIM), torch.randn(2, 9, DIM)
    out = mha(query, key).detach().double().numpy()
    for b in range(2):
        np.testing.assert_allclose(
            out[b], _numpy_mha(mha, query[b].double().numpy(), key[b].double().numpy()), rtol=1e-4, atol=1e-5
        )


def test_bridge_update_is_eq2():
    torch.manual_seed(1)
    ad = BridgeAdapter(DIM, num_bridge_tokens=4, num_heads=HEADS)
    bridge = ad.bridge_tokens[None].expand(2, -1, -1)
    geom, lang = torch.randn(2, 12, DIM), torch.randn(2, 12, DIM)
    got = ad.update_bridge(bridge, geom, lang).detach().double().numpy()
    for b in range(2):
        br = bridge[b].detach().double().numpy()
        ref = _numpy_mha(ad.bridge_from_geom, br, geom[b].double().numpy()) + _numpy_mha(
            ad.bridge_from_lang, br, lang[b].double().numpy()
        )
        np.testing.assert_allclose(got[b], ref, rtol=1e-4, atol=1e-5)


def test_bridge_forward_matches_manual_pipeline():
    torch.manual_seed(2)
    ad = BridgeAdapter(DIM, num_bridge_tokens=8, num_heads=HEADS, scope="clip")
    t = torch.randn(2, 3, 6, DIM)
    g_out, l_out = ad(t)
    geom = ad.phi_geom(t).reshape(2, 18, DIM)
    lang = ad.phi_lang(t).reshape(2, 18, DIM)
    gn, ln = ad.norm_geom(geom), ad.norm_lang(lang)
    br = ad.norm_bridge(
        ad.bridge_from_geom(ad.bridge_tokens[None].expand(2, -1, -1), gn)
        + ad.bridge_from_lang(ad.bridge_tokens[None].expand(2, -1, -1), ln)
    )
    torch.testing.assert_close(g_out, (geom + ad.geom_from_bridge(gn, br)).reshape(2, 3, 6, DIM))
    torch.testing.assert_close(l_out, (lang + ad.lang_from_bridge(ln, br)).reshape(2, 3, 6, DIM))


def test_frame_scope_equals_each_frame_alone_and_clip_mixes_frames():
    torch.manual_seed(3)
    t = torch.randn(1, 3, 5, DIM)
    frame = build_cta(CTAConfig(mode="bridge", num_bridge_tokens=4, num_heads=HEADS, scope="frame"), DIM)
    g, l = frame(t)
    for s in range(3):  # a frame processed alone gives the same result as inside the clip
        g1, l1 = frame(t[:, s : s + 1])
        torch.testing.assert_close(g[:, s : s + 1], g1)
        torch.testing.assert_close(l[:, s : s + 1], l1)
    clip = build_cta(CTAConfig(mode="bridge", num_bridge_tokens=4, num_heads=HEADS, scope="clip"), DIM)
    clip.load_state_dict(frame.state_dict())
    gc, _ = clip(t)
    g0, _ = clip(t[:, :1])
    assert not torch.allclose(gc[:, :1], g0)  # clip scope: frame 0 sees the other frames


@pytest.mark.parametrize("mode", CTA_MODES)
@pytest.mark.parametrize("scope", ["clip", "frame"])
def test_every_variant_forward_backward(mode, scope):
    torch.manual_seed(4)
    cfg = CTAConfig(mode=mode, num_bridge_tokens=4, num_heads=HEADS, scope=scope, geometry_dim=24)
    ad = build_cta(cfg, DIM)
    t = torch.randn(2, 3, 6, DIM, requires_grad=True)
    geo = torch.randn(2, 3, 6, 24)
    g, l = ad(t, geometry_tokens=geo)
    assert g.shape == l.shape == t.shape
    (g.square().mean() + l.square().mean()).backward()
    assert t.grad is not None and torch.isfinite(t.grad).all()
    params = [p for p in ad.parameters() if p.requires_grad]
    if mode == "none":
        assert not params
    else:
        assert params
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


def test_none_is_exact_identity():
    ad = build_cta(CTAConfig(mode="none"), DIM)
    t = torch.randn(1, 2, 4, DIM)
    g, l = ad(t)
    assert g is t and l is t


def test_passthrough_is_a_deprecated_alias_of_none():
    with pytest.warns(FutureWarning, match="cta.mode = 'passthrough' is a deprecated alias of 'none'"):
        cfg = CTAConfig(mode="passthrough")
    assert cfg.mode == "none"
    assert "passthrough" not in CTA_MODES
    ad = build_cta(cfg, DIM)
    t = torch.randn(1, 2, 4, DIM)
    g, l = ad(t)
    assert g is t and l is t


def test_fusion_baselines_use_geometry_tokens():
    torch.manual_seed(5)
    t = torch.randn(1, 2, 4, DIM)
    for mode in ("add", "xattn_fusion"):
        ad = build_cta(CTAConfig(mode=mode, num_heads=HEADS, geometry_dim=8), DIM)
        if mode == "add":
            torch.nn.init.normal_(ad.merger[-1].weight)
        g1, l1 = ad(t, torch.randn(1, 2, 4, 8))
        g2, l2 = ad(t, torch.randn(1, 2, 4, 8))
        assert torch.equal(g1, t) and torch.equal(g2, t)
        assert not torch.allclose(l1, l2)


def test_errors_name_the_problem():
    ad = build_cta(CTAConfig(mode="bridge", num_heads=HEADS), DIM)
    with pytest.raises(ValueError, match=r"\[B, S, P, 16\]"):
        ad(torch.randn(2, 5, DIM))
    with pytest.raises(ValueError, match="geometry_tokens"):
        build_cta(CTAConfig(mode="add", num_heads=HEADS, geometry_dim=8), DIM)(
            torch.randn(1, 2, 4, DIM), torch.randn(1, 2, 4, 7)
        )
    with pytest.raises(ValueError, match="cta.mode"):
        CTAConfig(mode="bogus")
    with pytest.raises(ValueError, match="num_heads"):
        build_cta(CTAConfig(mode="bridge", num_heads=5), DIM)


@pytest.mark.parametrize("k", [4, 8, 16, 32])
def test_bridge_any_number_of_tokens(k):
    ad = build_cta(CTAConfig(mode="bridge", num_bridge_tokens=k, num_heads=HEADS), DIM)
    assert ad.bridge_tokens.shape == (k, DIM)
    g, l = ad(torch.randn(1, 2, 3, DIM))
    assert g.shape == l.shape == (1, 2, 3, DIM)


@pytest.mark.parametrize("mode", ["bridge", "concat_sa", "cross_attn"])
@pytest.mark.parametrize("scope", ["clip", "frame"])
def test_identity_init_is_exact_identity_then_learns(mode, scope):
    torch.manual_seed(6)
    ad = build_cta(CTAConfig(mode=mode, num_bridge_tokens=4, num_heads=HEADS, scope=scope, identity_init=True), DIM)
    t = torch.randn(2, 3, 6, DIM)
    g, l = ad(t)
    assert torch.equal(g, t) and torch.equal(l, t)
    # gradients reach the zero-initialised layers at once, and every parameter after one update
    target_g, target_l = torch.randn_like(t), torch.randn_like(t)
    opt = torch.optim.SGD(ad.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        g, l = ad(t)
        ((g - target_g).square().mean() + (l - target_l).square().mean()).backward()
        if _ == 0:
            assert ad.phi_geom.fc2.weight.grad.abs().sum() > 0 and ad.phi_lang.fc2.weight.grad.abs().sum() > 0
        opt.step()
    assert ad.phi_geom.fc1.weight.grad.abs().sum() > 0
    g, _ = ad(t)
    assert not torch.equal(g, t)


def test_identity_init_residual_mlp_and_paper_default():
    from cta.mlp import ProjectionMLP

    torch.manual_seed(7)
    x = torch.randn(3, DIM)
    res = ProjectionMLP(DIM, 4.0, residual=True)
    assert torch.equal(res(x), x)
    with torch.no_grad():
        res.fc2.weight.normal_()
    torch.testing.assert_close(res(x), x + res.fc2(res.act(res.fc1(x))))
    plain = ProjectionMLP(DIM, 4.0)
    torch.testing.assert_close(plain(x), plain.fc2(plain.act(plain.fc1(x))))
    assert CTAConfig().identity_init is False  # the paper's φ (Eq. 1) is a plain MLP
    ad = build_cta(CTAConfig(num_bridge_tokens=4, num_heads=HEADS), DIM)
    t = torch.randn(1, 2, 4, DIM)
    assert not torch.allclose(ad(t)[0], t) and ad.phi_geom.fc2.weight.abs().sum() > 0
