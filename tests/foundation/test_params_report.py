"""The paper-scale model accounted for without a GPU: ``vidllm config --params`` builds it on the meta device;
its encoder + reconstruction branch has VGGT-1B's exact parameter shapes and its LLM Qwen2.5-7B's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recon.vggt_loader import SKIPPED_HEADS, to_vggt_state_dict
from tests.recon.vggt_reference import make_vggt_state_dict
from vidllm.cli import main
from vidllm.config import load_config
from vidllm.params import PRECISIONS, build_meta_model, param_report

ROOT = Path(__file__).resolve().parents[2]
LARGE = ROOT / "configs" / "vidllm_large.yaml"

# VGGT-1B as published (Wang et al., CVPR 2025; facebookresearch/vggt): embed 1024, 24 frame + 24 global
# blocks with 16 heads, DINOv2-L/14 patch embed with 4 registers at 518 px (37×37 positions), camera head
# trunk depth 4, DPT depth head with 256 features, out_channels [256, 512, 1024, 1024].
VGGT_1B = dict(
    dim=1024,
    agg_depth=24,
    dino_depth=24,
    registers=4,
    pos_grid=37,
    patch=14,
    trunk_depth=4,
    features=256,
    out_channels=(256, 512, 1024, 1024),
    heads=16,
    extra_heads=False,
    device="meta",
)

# Qwen2.5-7B(-Instruct) config.json as published (hidden 3584, 28 layers, 28 query / 4 key-value heads,
# MLP 18944, vocabulary 152064, untied output head).
QWEN25_7B = dict(
    hidden_size=3584,
    intermediate_size=18944,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    vocab_size=152064,
    tie_word_embeddings=False,
    max_position_embeddings=32768,
    rope_theta=1e6,
    rms_norm_eps=1e-6,
)


@pytest.fixture(scope="module")
def large_model():
    model, _ = build_meta_model(load_config(LARGE))
    return model


def test_meta_build_allocates_nothing(large_model):
    assert {p.device.type for p in large_model.parameters()} == {"meta"}


def test_encoder_and_recon_branch_have_vggt_1b_shapes(large_model):
    ours = to_vggt_state_dict(
        parts={p: getattr(large_model, p) for p in ("encoder", "aggregator", "camera_head", "depth_head")}
    )
    ref = make_vggt_state_dict(**VGGT_1B)
    assert not any(k.startswith(SKIPPED_HEADS) for k in ref)
    assert sorted(set(ref) - set(ours)) == [] and sorted(set(ours) - set(ref)) == []
    bad = {k: (tuple(ours[k].shape), tuple(ref[k].shape)) for k in ref if ours[k].shape != ref[k].shape}
    assert not bad, f"shape mismatches (ours, VGGT-1B): {dict(list(bad.items())[:5])}"
    assert tuple(ref["aggregator.patch_embed.pos_embed"].shape) == (1, 1 + 37 * 37, 1024)
    assert len([k for k in ref if k.startswith("aggregator.frame_blocks.") and k.endswith("attn.qkv.weight")]) == 24


@pytest.fixture(scope="module")
def qwen_ref():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    with torch.device("meta"):
        return Qwen2ForCausalLM(Qwen2Config(**QWEN25_7B))


def test_llm_matches_qwen2_5_7b(large_model, qwen_ref):
    ref = qwen_ref
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    ours = {}
    for k, v in large_model.vl.lm.base_model.state_dict().items():
        if "lora_" not in k:
            ours[k.replace(".base_layer.", ".")] = tuple(v.shape)
    assert ours == ref_shapes
    total = sum(p.numel() for p in ref.parameters())
    embeddings = 2 * QWEN25_7B["vocab_size"] * QWEN25_7B["hidden_size"]
    assert (
        7.61e9 <= total < 7.62e9 and round((total - embeddings) / 1e7) == 653
    )  # model card: 7.61B, 6.53B non-embedding
    lora = [k for k in large_model.vl.lm.model.state_dict() if "lora_A" in k]
    assert len(lora) == 28 * 4  # LoRA on q/k/v/o of every layer (llm.lora_target_modules)


def test_report_stages_and_bytes(qwen_ref):
    cfg = load_config(LARGE)
    report = param_report(cfg)
    model_total = sum(report.modules.values())
    assert report.modules["vl"] > 7.6e9 and report.modules["aggregator"] == sum(report.stages[2]["aggregator"].values())
    for stage in (1, 2):
        rows = report.stages[stage]
        assert sum(r["trainable"] + r["frozen"] for k, r in rows.items() if k in report.modules) == model_total
        for size in PRECISIONS.values():
            mem = report.memory(stage, size)
            trainable, frozen = report.totals(stage)
            assert (
                mem["weights"] == (trainable + frozen) * size
                and mem["optimizer"] == 2 * mem["gradients"] == 2 * trainable * size
            )
    s1 = {k for k, r in report.stages[1].items() if r["trainable"]}
    assert s1 == {"encoder", "cta", "distill_heads"}
    assert report.stages[1]["teachers"]["frozen"] > 6e8  # DINOv2-L (VGGT's patch embed) + CLIP ViT-L/14-336
    assert report.stages[2]["vl"]["frozen"] == sum(
        p.numel() for p in qwen_ref.parameters()
    )  # the LLM frozen, its LoRA trains
    assert report.stages[2]["vl"]["trainable"] > 0 and report.stages[1]["vl"]["trainable"] == 0


def test_params_command_prints_the_report(capsys):
    assert main(["config", str(ROOT / "configs" / "tiny.yaml"), "--params"]) == 0
    out = capsys.readouterr().out
    assert "built on the meta device" in out and "stage 1:" in out and "stage 2:" in out
    assert any(line.startswith("2      fp32") for line in out.splitlines()) and any(
        line.startswith("1      bf16") for line in out.splitlines()
    )
