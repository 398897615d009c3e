"""GeoVR-style auxiliary heads (vl.geo_aux): config, shapes, losses vs NumPy, gradients, shipped config."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tests.helpers import micro_config, micro_run_overrides
from vl.branch import VLBranch
from vl.config import GeoAuxConfig, VLConfig
from vl.geo_aux import alignment_loss, camera_loss, geometry_loss, resolve_layers, scale_loss, scene_scale
from vl.prompts import render_prompts

C, B, S, H, W = 32, 2, 3, 42, 56  # 3 × 4 patch grid, P = 12
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "baselines" / "geovr_aux.yaml"


def _clip(seed=0, geometry_tokens=True):
    g = torch.Generator().manual_seed(seed)
    depth = torch.rand(B, S, H, W, generator=g) * 3 + 1
    ext = torch.eye(3, 4).expand(B, S, 3, 4).clone()
    ext[..., 0, 3] = torch.arange(S, dtype=torch.float32) * 0.3
    ext[1, :, 1, 3] = -0.2
    k = torch.tensor([[40.0, 0, W / 2], [0, 44.0, H / 2], [0, 0, 1]]).expand(B, S, 3, 3).clone()
    geometry = {"depth": depth, "extrinsic": ext, "intrinsic": k, "depth_conf": torch.rand(B, S, H, W, generator=g) + 1}
    if geometry_tokens:
        geometry["geometry_tokens"] = torch.randn(B, S, (H // 14) * (W // 14), 2 * C, generator=g)
    return geometry, torch.randn(B, S, (H // 14) * (W // 14), C, generator=g)


def _batch():
    prompts = render_prompts(
        ["qa", "ground"], questions=["what colour is the sofa ?", None], descriptions=[None, "the red chair"]
    )
    return {
        "prompts": prompts,
        "answers": ["green", "<ground>"],
        "target_boxes": [torch.zeros(0, 6), torch.tensor([[0.0, 0.0, 2.0, 1.0, 1.0, 1.0]])],
    }


def _branch(word_tokenizer, tiny_llm_config, enabled=True, num_layers=4, **geo_kw):
    torch.manual_seed(0)
    cfg = VLConfig(voxel_size=0.5, max_3d_tokens=64, geo_aux=GeoAuxConfig(enabled=enabled, **geo_kw))
    return VLBranch(cfg, tiny_llm_config(num_layers=num_layers), C, patch_size=14, tokenizer=word_tokenizer)


# --------------------------------------------------------------------------- config
def test_config_defaults_and_validation():
    cfg = GeoAuxConfig()
    assert cfg.enabled is False and VLConfig().geo_aux == cfg
    with pytest.raises(ValueError, match="fractions"):
        GeoAuxConfig(align_layers=[0.0, 0.5])
    with pytest.raises(ValueError, match="fractions"):
        GeoAuxConfig(depth_layers=[1.5])
    with pytest.raises(ValueError, match=">= 0"):
        GeoAuxConfig(camera_weight=-1.0)
    with pytest.raises(ValueError, match="at least one"):
        GeoAuxConfig(enabled=True, camera_weight=0, depth_weight=0, scale_weight=0, align_weight=0)
    assert resolve_layers([0.2083, 0.5, 0.75, 1.0], 28) == [6, 14, 21, 28]
    assert resolve_layers([0.1, 1.0], 1) == [1, 1]


def test_disabled_adds_no_parameters_or_terms(word_tokenizer, tiny_llm_config):
    off = _branch(word_tokenizer, tiny_llm_config, enabled=False)
    on = _branch(word_tokenizer, tiny_llm_config, enabled=True)
    keys_off, keys_on = set(off.state_dict()), set(on.state_dict())
    assert off.geo_aux is None and not any("geo_aux" in k for k in keys_off)
    assert keys_off < keys_on and all(k.startswith("geo_aux.") for k in keys_on - keys_off)
    geometry, t_lang = _clip()
    out = off(t_lang, geometry, _batch())
    assert not any(k.startswith("geo_") for k in out)
    # without queries the LM input is exactly the plain one
    tokens = off.tokens_3d(t_lang, geometry)
    assert off._queries(tokens) is None and "frame_features" not in tokens


# --------------------------------------------------------------------------- shapes
def test_shapes_and_query_placement(word_tokenizer, tiny_llm_config):
    branch = _branch(word_tokenizer, tiny_llm_config)
    aux = branch.geo_aux
    geometry, t_lang = _clip()
    tokens = branch.tokens_3d(t_lang, geometry)
    m = tokens["mask"].shape[1]
    hid = branch.lm.hidden_size
    extra = branch._queries(tokens)
    assert extra.shape == (B, S + 1, hid) and tokens["frame_features"].shape == (B, S, C)
    out = branch.lm(
        tokens["features"],
        tokens["mask"],
        _batch()["prompts"],
        _batch()["answers"],
        extra=extra,
        output_hidden_states=True,
    )
    assert len(out["hidden_states"]) == branch.lm.num_layers + 1
    assert torch.equal(out["hidden_states"][-1], out["hidden"])
    vi = out["inputs"]["visual_index"]
    for b in range(B):
        row = vi[b]
        n3d = int(tokens["mask"][b].sum())
        pos = (row >= 0).nonzero(as_tuple=True)[0]
        assert pos.numel() == n3d + S + 1 and torch.equal(
            pos, torch.arange(pos[0], pos[0] + pos.numel())
        )  # contiguous block
        assert row[pos[n3d:]].tolist() == list(range(m, m + S + 1))  # queries right after the 3D tokens, in order
    token_states = {layer: torch.randn(B, m, hid) for layer in set(aux.depth_layers) | set(aux.align_layers)}
    pred = aux.predict(token_states, torch.randn(B, S + 1, hid), S)
    assert pred["pose_enc"].shape == (B, S, 9) and pred["log_scale"].shape == (B,)
    assert pred["points"].shape == (B, m, 3) and pred["conf"].shape == (B, m) and (pred["conf"] > 1).all()
    assert len(pred["align"]) == 4 and all(z.shape == (B, m, 2 * C) for z in pred["align"])
    assert aux.align_layers == [1, 2, 3, 4] and aux.depth_layers == [4]
    target = aux.targets(geometry, tokens, branch.cfg.voxel_size, branch.cfg.max_3d_tokens)
    assert target["pose_enc"].shape == (B, S, 9) and target["points"].shape == (B, m, 3)
    assert target["geometry_tokens"].shape == (B, m, 2 * C) and target["scale"].shape == (B,)
    # only the camera head: S queries, no scale token; only the scale head: 1 query
    cam = _branch(word_tokenizer, tiny_llm_config, depth_weight=0, scale_weight=0, align_weight=0)
    assert cam._queries(cam.tokens_3d(t_lang, geometry)).shape == (B, S, hid) and not hasattr(
        cam.geo_aux, "scale_token"
    )
    sc = _branch(word_tokenizer, tiny_llm_config, camera_weight=0, depth_weight=0, align_weight=0)
    assert sc._queries(sc.tokens_3d(t_lang, geometry)).shape == (B, 1, hid) and not hasattr(sc.geo_aux, "camera_head")


# --------------------------------------------------------------------------- losses vs NumPy
def test_losses_match_numpy():
    rng = np.random.default_rng(0)
    pred, tgt = rng.normal(size=(2, 4, 9)), rng.normal(size=(2, 4, 9))
    valid = np.array([[True, True, False, True], [False, False, False, False]])
    got = camera_loss(torch.tensor(pred), torch.tensor(tgt), torch.tensor(valid), 2.0, 0.5)
    e = np.abs(pred - tgt)
    per = e[..., :3].sum(-1) + 2.0 * e[..., 3:7].sum(-1) + 0.5 * e[..., 7:].sum(-1)
    np.testing.assert_allclose(got.item(), per[valid].mean(), rtol=1e-5)

    p, t = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 3))
    conf = 1 + np.exp(rng.normal(size=(2, 5)))
    mask = rng.random((2, 5)) > 0.3
    got = geometry_loss(torch.tensor(p), torch.tensor(conf), torch.tensor(t), torch.tensor(mask), 0.2)
    ref = conf * np.sqrt(((p - t) ** 2).sum(-1)) - 0.2 * np.log(conf)
    np.testing.assert_allclose(got.item(), ref[mask].mean(), rtol=1e-5)

    log_s, s = rng.normal(size=3), rng.random(3) + 0.5
    v = np.array([True, False, True])
    np.testing.assert_allclose(
        scale_loss(torch.tensor(log_s), torch.tensor(s), torch.tensor(v)).item(),
        np.abs(log_s - np.log(s))[v].mean(),
        rtol=1e-5,
    )

    zs, g = [rng.normal(size=(2, 5, 6)) for _ in range(3)], rng.normal(size=(2, 5, 6))
    cos = [(z * g).sum(-1) / (np.linalg.norm(z, axis=-1) * np.linalg.norm(g, axis=-1)) for z in zs]
    ref = np.mean([(1 - c)[mask].mean() for c in cos])
    np.testing.assert_allclose(
        alignment_loss([torch.tensor(z) for z in zs], torch.tensor(g), torch.tensor(mask)).item(), ref, rtol=1e-5
    )

    pts = rng.normal(size=(2, 6, 3))
    ok = rng.random((2, 6)) > 0.4
    ok[1] = False
    s, has = scene_scale(torch.tensor(pts), torch.tensor(ok))
    np.testing.assert_allclose(s[0].item(), np.linalg.norm(pts[0][ok[0]], axis=-1).mean(), rtol=1e-6)
    assert has.tolist() == [True, False] and s[1].item() == 1.0

    # no valid element anywhere: an exact zero, still differentiable
    x = torch.randn(2, 4, 9, requires_grad=True)
    zero = camera_loss(x, torch.zeros(2, 4, 9), torch.zeros(2, 4, dtype=torch.bool), 1.0, 1.0)
    zero.backward()
    assert zero.item() == 0.0 and x.grad is not None


def test_targets_match_numpy(word_tokenizer, tiny_llm_config):
    branch = _branch(word_tokenizer, tiny_llm_config)
    geometry, t_lang = _clip(3)
    tokens = branch.tokens_3d(t_lang, geometry)
    target = branch.geo_aux.targets(geometry, tokens, branch.cfg.voxel_size, branch.cfg.max_3d_tokens)
    pp, pv = tokens["patch_points"].numpy().reshape(B, -1, 3), tokens["patch_valid"].numpy().reshape(B, -1)
    g = geometry["geometry_tokens"].numpy().reshape(B, -1, 2 * C)
    ext, k = geometry["extrinsic"].numpy(), geometry["intrinsic"].numpy()
    for b in range(B):
        s = np.linalg.norm(pp[b][pv[b]], axis=-1).mean()
        np.testing.assert_allclose(target["scale"][b].item(), s, rtol=1e-5)
        # pose encoding: translation / s, rotation = identity quaternion, fov from fy / fx
        np.testing.assert_allclose(target["pose_enc"][b, :, :3].numpy(), ext[b, :, :, 3] / s, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(target["pose_enc"][b, :, 3:7].numpy(), np.tile([0, 0, 0, 1.0], (S, 1)), atol=1e-6)
        np.testing.assert_allclose(
            target["pose_enc"][b, :, 7].numpy(), 2 * np.arctan((H / 2) / k[b, :, 1, 1]), rtol=1e-5
        )
        np.testing.assert_allclose(
            target["pose_enc"][b, :, 8].numpy(), 2 * np.arctan((W / 2) / k[b, :, 0, 0]), rtol=1e-5
        )
        # voxel groups by floor(p / voxel): mean point (÷ s) and mean geometry token per occupied voxel
        keys = np.floor(pp[b][pv[b]] / branch.cfg.voxel_size).astype(np.int64)
        groups = {}
        for key, p, f in zip(map(tuple, keys), pp[b][pv[b]], g[b][pv[b]]):
            groups.setdefault(key, []).append((p, f))
        slots = tokens["mask"][b].nonzero(as_tuple=True)[0].tolist()
        assert len(slots) == len(groups)
        for slot in slots:
            point = tokens["points"][b, slot].numpy()
            key = min(groups, key=lambda kk: np.abs(np.mean([p for p, _ in groups[kk]], 0) - point).sum())
            np.testing.assert_allclose(
                target["points"][b, slot].numpy(), np.mean([p for p, _ in groups[key]], 0) / s, rtol=1e-4, atol=1e-5
            )
            np.testing.assert_allclose(
                target["geometry_tokens"][b, slot].numpy(),
                np.mean([f for _, f in groups[key]], 0),
                rtol=1e-4,
                atol=1e-5,
            )


# --------------------------------------------------------------------------- gradients
def test_forward_gradients_reach_heads_and_projector_one_way(word_tokenizer, tiny_llm_config):
    branch = _branch(word_tokenizer, tiny_llm_config)
    geometry, t_lang = _clip(1)
    for key in ("depth", "extrinsic", "geometry_tokens"):
        geometry[key].requires_grad_()
    t_lang.requires_grad_()
    out = branch(t_lang, geometry, _batch())
    names = ("geo_camera", "geo_depth", "geo_scale", "geo_align")
    assert all(torch.isfinite(out[k]) and out[k] > 0 for k in names)
    lm_only = out["lm"] + sum(out[k] for k in ("l1", "giou", "objectness"))
    expected = (
        lm_only + 1.0 * out["geo_camera"] + 1.0 * out["geo_depth"] + 1.0 * out["geo_scale"] + 0.5 * out["geo_align"]
    )
    torch.testing.assert_close(out["loss"], expected)
    out["loss"].backward()
    assert all(geometry[k].grad is None for k in ("depth", "extrinsic", "geometry_tokens"))  # one-way gradient
    aux = branch.geo_aux
    for name, p in aux.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert branch.lm.projector[0].weight.grad.abs().sum() > 0 and t_lang.grad.abs().sum() > 0

    # each term alone reaches its own head and the projector
    heads = {
        "geo_camera": aux.camera_head,
        "geo_depth": aux.depth_head,
        "geo_scale": aux.scale_head,
        "geo_align": aux.align_heads,
    }
    for name in names:
        branch.zero_grad()
        branch(t_lang.detach(), geometry, _batch())[name].backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads[name].parameters()), name
        assert branch.lm.projector[0].weight.grad.abs().sum() > 0, name
        others = [h for n, h in heads.items() if n != name]
        assert all(p.grad is None or p.grad.abs().sum() == 0 for h in others for p in h.parameters()), name


def test_empty_geometry_and_missing_geometry_tokens(word_tokenizer, tiny_llm_config, caplog):
    branch = _branch(word_tokenizer, tiny_llm_config)
    geometry, t_lang = _clip(2, geometry_tokens=False)
    with caplog.at_level(logging.WARNING, logger="vl.branch"):
        out = branch(t_lang, geometry, _batch())
    assert "geo_align" not in out and "geometry_tokens" in caplog.text
    assert all(torch.isfinite(out[k]) for k in ("geo_camera", "geo_depth", "geo_scale"))
    out["loss"].backward()
    assert all(p.grad is not None for p in branch.geo_aux.parameters())  # DDP: still every parameter in the graph
    geometry, t_lang = _clip(2)
    geometry["depth"] = torch.zeros_like(geometry["depth"])  # no valid 3D point: exact zeros
    out = branch(t_lang.requires_grad_(), geometry, _batch())
    assert all(out[k].item() == 0.0 for k in ("geo_camera", "geo_depth", "geo_scale", "geo_align"))
    out["loss"].backward()


def test_inference_paths_with_queries(word_tokenizer, tiny_llm_config):
    branch = _branch(word_tokenizer, tiny_llm_config).eval()
    geometry, t_lang = _clip(4)
    prompts = _batch()["prompts"]
    text = branch.generate(t_lang, geometry, prompts, max_new_tokens=3)
    assert len(text) == B and all(isinstance(t, str) for t in text)
    res = branch.ground(t_lang, geometry, prompts)
    assert res["box"].shape == (B, 6)


def test_bfloat16_branch(word_tokenizer, tiny_llm_config):
    branch = _branch(word_tokenizer, tiny_llm_config).to(torch.bfloat16)
    geometry, t_lang = _clip(5)
    out = branch(t_lang.bfloat16(), geometry, _batch())
    assert torch.isfinite(out["loss"])
    out["loss"].backward()


# --------------------------------------------------------------------------- shipped config
def test_shipped_config_loads():
    from vidllm.config import load_config

    cfg = load_config(CONFIG)
    geo = cfg.vl.geo_aux
    assert geo.enabled and geo.align_layers == [0.2083, 0.5, 0.75, 1.0] and cfg.llm.num_layers == 28
    assert resolve_layers(geo.align_layers, cfg.llm.num_layers) == [6, 14, 21, 28]


def test_shipped_config_trains_one_step_one_way(synthetic_root, teacher_files, tokenizer):
    """The tiny module with the shipped delta: geo terms are logged, reach the VL branch only."""
    from tests.training.test_shipped_configs import _batch as data_batch
    from vidllm.config import config_from_dict
    from vidllm.training.module import VidLLMModule

    delta = OmegaConf.to_container(OmegaConf.load(CONFIG))
    delta.pop("defaults", None)
    overrides = micro_run_overrides(synthetic_root, teacher_files)
    cfg = config_from_dict(
        overrides, source="test", base=config_from_dict(delta, source=str(CONFIG), base=micro_config())
    )
    torch.manual_seed(0)
    module = VidLLMModule(cfg, tokenizer)
    losses = module.stage2_losses(data_batch(cfg))
    names = [f"vl/geo_{k}" for k in ("camera", "depth", "scale", "align")]
    assert all(torch.isfinite(losses[k]) for k in names)
    sum(losses[k] for k in names).backward()
    grads = {
        n.split(".", 1)[0] for n, p in module.model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0
    }
    assert "vl" in grads and not grads & {"aggregator", "camera_head", "depth_head", "metric_depth"}, grads
    assert all(p.grad is not None for p in module.model.vl.geo_aux.parameters())
