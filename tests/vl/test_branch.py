"""End-to-end VL branch: fabricated clip → CTA → 3D tokens → tiny LLM → losses; inference paths."""

import time

import torch

from cta import build_cta
from cta.config import CTAConfig
from vl.branch import VLBranch
from vl.config import GroundingConfig, VLConfig
from vl.prompts import render_prompts

C, B, S, H, W = 32, 2, 4, 42, 56  # non-square 3 × 4 patch grid, P = 12


def _clip(seed=0):
    g = torch.Generator().manual_seed(seed)
    depth = torch.rand(B, S, H, W, generator=g) * 3 + 1
    ext = torch.eye(3, 4).expand(B, S, 3, 4).clone()
    ext[..., 0, 3] = torch.arange(S, dtype=torch.float32) * 0.3
    k = torch.tensor([[40.0, 0, W / 2], [0, 40.0, H / 2], [0, 0, 1]]).expand(B, S, 3, 3).clone()
    conf = torch.rand(B, S, H, W, generator=g) + 1
    return {"depth": depth, "extrinsic": ext, "intrinsic": k, "depth_conf": conf}, torch.randn(
        B, S, (H // 14) * (W // 14), C, generator=g
    )


def _batch():
    prompts = render_prompts(
        ["qa", "ground"], questions=["what colour is the sofa ?", None], descriptions=[None, "the red chair"]
    )
    return {
        "prompts": prompts,
        "answers": ["green", "<ground>"],
        "target_boxes": [torch.zeros(0, 6), torch.tensor([[0.0, 0.0, 2.0, 1.0, 1.0, 1.0]])],
        "proposals": [
            torch.zeros(0, 6),
            torch.tensor([[0.0, 0.0, 2.0, 1.0, 1.0, 1.0], [1.0, 1.0, 3.0, 0.5, 0.5, 0.5]]),
        ],
        "proposal_positives": [torch.zeros(0, dtype=torch.bool), torch.tensor([True, False])],
    }


def _branch(word_tokenizer, tiny_llm_config, **vl_kw):
    torch.manual_seed(0)
    cfg = VLConfig(voxel_size=0.25, max_3d_tokens=64, **vl_kw)
    return VLBranch(cfg, tiny_llm_config(), C, patch_size=14, tokenizer=word_tokenizer)


def test_end_to_end_forward_backward_one_way_gradient(word_tokenizer, tiny_llm_config):
    cta = build_cta(CTAConfig(mode="bridge", num_bridge_tokens=4, num_heads=4), C)
    branch = _branch(word_tokenizer, tiny_llm_config)
    geometry, t_base = _clip()
    geometry["depth"].requires_grad_()
    geometry["extrinsic"].requires_grad_()
    t_base.requires_grad_()
    times = []
    for _ in range(2):  # the first pass includes one-off kernel/library initialisation
        start = time.perf_counter()
        _, t_lang = cta(t_base)
        out = branch(t_lang, geometry, _batch())
        out["loss"].backward()
        times.append(time.perf_counter() - start)
    print(
        f"\ntiny end-to-end VL forward+backward (CTA → 3D tokens → LLM → loss) on CPU: first {times[0]:.3f} s, warm {times[1]:.3f} s"
    )
    for key in ("loss", "lm", "l1", "giou", "objectness", "proposal"):
        assert torch.isfinite(out[key]), key
    assert (out["num_3d_tokens"] > 0).all() and (out["num_3d_tokens"] <= 64).all()
    assert geometry["depth"].grad is None and geometry["extrinsic"].grad is None  # one-way gradient
    assert t_base.grad is not None and cta.bridge_tokens.grad is not None
    assert branch.pos_embed.fc1.weight.grad is not None and branch.grounding.no_object.grad is not None


def test_empty_cases_are_finite(word_tokenizer, tiny_llm_config):
    branch = _branch(word_tokenizer, tiny_llm_config)
    geometry, t_lang = _clip(1)
    geometry["depth"] = torch.zeros_like(geometry["depth"])  # no valid 3D token at all
    batch = _batch()
    batch["target_boxes"] = [torch.zeros(0, 6), torch.zeros(0, 6)]
    batch["proposals"] = [torch.zeros(0, 6), torch.zeros(0, 6)]
    batch["proposal_positives"] = [torch.zeros(0, dtype=torch.bool)] * 2
    out = branch(t_lang.requires_grad_(), geometry, batch)
    assert out["num_3d_tokens"].tolist() == [0, 0]
    assert all(torch.isfinite(out[k]) for k in ("loss", "lm", "l1", "giou", "objectness", "proposal"))
    out["loss"].backward()
    # a batch without grounding answers: grounding terms are exact zeros
    qa = {
        "prompts": render_prompts(["qa", "sqa"], questions=["what ?", "which ?"], situations=[None, "i sit ."]),
        "answers": ["two", "left"],
        "target_boxes": [torch.zeros(0, 6)] * 2,
    }
    out = branch(_clip(2)[1], _clip(2)[0], qa)
    assert out["l1"].item() == 0 and torch.isfinite(out["loss"])


def test_grounding_modes_select_their_losses(word_tokenizer, tiny_llm_config):
    geometry, t_lang = _clip(3)
    reg = _branch(word_tokenizer, tiny_llm_config, grounding=GroundingConfig(mode="regression"))(
        t_lang, geometry, _batch()
    )
    assert "l1" in reg and "proposal" not in reg
    prop = _branch(word_tokenizer, tiny_llm_config, grounding=GroundingConfig(mode="proposal"))(
        t_lang, geometry, _batch()
    )
    assert "proposal" in prop and "l1" not in prop


def test_inference_generate_and_ground_with_world_frame(word_tokenizer, tiny_llm_config):
    branch = _branch(word_tokenizer, tiny_llm_config)
    geometry, t_lang = _clip(4)
    texts = branch.generate(t_lang, geometry, _batch()["prompts"], max_new_tokens=3)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    wfm = torch.eye(4).expand(B, 4, 4).clone()
    wfm[:, :3, 3] = torch.tensor([10.0, 0.0, 0.0])
    prompts = render_prompts(["ground", "ground"], descriptions=["the red chair", "the blue table"])
    no_props = branch.ground(t_lang, geometry, prompts)
    shifted = branch.ground(t_lang, geometry, prompts, world_from_model=wfm)
    torch.testing.assert_close(shifted["box"][:, :3], no_props["box"][:, :3] + torch.tensor([10.0, 0, 0]))
    assert (no_props["proposal_index"] == -1).all()
    assert no_props["selected"].any(-1).all() and no_props["selected"].shape == no_props["scores"].shape
    props_world = [torch.tensor([[10.0, 0, 2, 1, 1, 1], [11.0, 1, 3, 0.5, 0.5, 0.5]])] * 2
    with_props = branch.ground(t_lang, geometry, prompts, proposals=props_world, world_from_model=wfm)
    for i in range(B):
        j = int(with_props["proposal_index"][i])
        expected = props_world[i][j] if j >= 0 else shifted["box"][i]
        torch.testing.assert_close(with_props["box"][i], expected)


def test_bfloat16_branch(word_tokenizer, tiny_llm_config):
    branch = _branch(word_tokenizer, tiny_llm_config).to(torch.bfloat16)
    geometry, t_lang = _clip(5)
    out = branch(t_lang.bfloat16(), geometry, _batch())
    assert torch.isfinite(out["loss"])
    out["loss"].backward()


def test_sincos_embedding_and_center_sampling(word_tokenizer, tiny_llm_config):
    branch = _branch(word_tokenizer, tiny_llm_config, pos_embed="sincos", depth_sample="center", min_confidence=1.5)
    geometry, t_lang = _clip(6)
    tokens = branch.tokens_3d(t_lang, geometry)
    assert tokens["mask"].any() and tokens["counts"].sum() < B * S * t_lang.shape[2]  # low-confidence centres dropped
    assert torch.isfinite(branch(t_lang, geometry, _batch())["loss"])
