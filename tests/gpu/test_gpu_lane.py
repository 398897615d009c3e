"""The GPU lane (``-m cuda``): bf16 autocast training, xformers against SDPA, the Lightning strategies on one
device and bf16 inference. Every test here is marked ``cuda``; without a CUDA device tests/conftest.py
marks them skipped with the reason, so ``pytest -ra`` lists them as not run (never as passed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import micro_config

pytestmark = pytest.mark.cuda

STRATEGY_FILES = sorted(
    p for p in (Path(__file__).resolve().parents[2] / "configs" / "strategies").glob("*.yaml") if "zero3" not in p.name
)


def _cfg(synthetic_root, **extra):
    return micro_config(**{"data.root": str(synthetic_root), "train.stage": 2, "data.num_workers": 0, **extra})


def _batch(cfg, device):
    from vidllm.data.datamodule import collate_clips
    from vidllm.data.dataset import VidLLMDataset

    dataset = VidLLMDataset(cfg.data, "train", tasks=["recon", "qa", "grounding", "caption"])
    first = {}
    for i, (task, _) in enumerate(dataset.samples):
        first.setdefault(task, i)
    batch = collate_clips([dataset[first[t]] for t in ("qa", "grounding", "caption", "recon")])
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def test_bf16_autocast_forward_backward_full_model(synthetic_root, tokenizer):
    from vidllm.training.module import VidLLMModule

    cfg = _cfg(synthetic_root)
    torch.manual_seed(0)
    module = VidLLMModule(cfg, tokenizer).cuda()
    batch = _batch(cfg, "cuda")
    module.eval()
    with torch.no_grad():
        loss32 = module.stage2_losses(batch)["loss"].float()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss16 = module.stage2_losses(batch)["loss"].float()
    assert torch.isfinite(loss32) and torch.isfinite(loss16)
    assert abs(loss16 - loss32) <= 0.05 * abs(loss32) + 0.05, (float(loss16), float(loss32))
    module.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = module.stage2_losses(batch)["loss"]
    loss.backward()
    grads = {n: p.grad for n, p in module.model.named_parameters() if p.requires_grad and p.grad is not None}
    assert grads and all(torch.isfinite(g).all() for g in grads.values())
    assert {n.split(".", 1)[0] for n, g in grads.items() if g.abs().sum() > 0} >= {"encoder", "cta", "aggregator", "vl"}


def test_xformers_matches_sdpa_in_bf16(synthetic_root, tokenizer):
    pytest.importorskip("xformers.ops", reason="xformers is not installed (pip install '.[gpu]')")
    from recon.attention import attention, use_attention_backend
    from vidllm.model import VidLLM

    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(2, 4, 333, 64, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(3))
    torch.testing.assert_close(
        attention(q, k, v, backend="xformers"), attention(q, k, v, backend="sdpa"), atol=2e-2, rtol=2e-2
    )
    cfg = _cfg(synthetic_root)
    torch.manual_seed(0)
    model = VidLLM(cfg, tokenizer).cuda().eval()
    images = torch.rand(1, 2, 3, 42, 56, device="cuda")
    outs = {}
    try:
        for backend in ("xformers", "sdpa"):
            use_attention_backend(model, backend)
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                outs[backend] = model(images)
    finally:
        use_attention_backend(model, cfg.attention_backend)
    for key in ("depth", "pose_enc"):
        if key in outs["sdpa"]:
            torch.testing.assert_close(outs["xformers"][key].float(), outs["sdpa"][key].float(), atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize("path", STRATEGY_FILES, ids=lambda p: p.stem)
def test_strategy_takes_one_step_on_one_device(path, synthetic_root, tokenizer, tmp_path):
    import lightning as L

    from vidllm.data.datamodule import VidLLMDataModule
    from vidllm.training.module import VidLLMModule
    from vidllm.training.strategies import build_strategy, read_trainer_config

    data = read_trainer_config(path)
    if data["strategy"]["class_path"].endswith("DeepSpeedStrategy"):
        pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install deepspeed)")
    cfg = _cfg(synthetic_root, **{"data.batch_size": 1})
    torch.manual_seed(0)
    module = VidLLMModule(cfg, tokenizer)
    trainer = L.Trainer(
        accelerator="gpu",
        devices=1,
        strategy=build_strategy(data["strategy"]),
        precision=data.get("precision", "bf16-mixed"),
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, datamodule=VidLLMDataModule(cfg.data))
    assert trainer.global_step == 1


def test_from_pretrained_bfloat16_inference(synthetic_root, tokenizer, tmp_path):
    from vidllm.api import VidLLMPipeline
    from vidllm.model import VidLLM

    cfg = _cfg(synthetic_root)
    torch.manual_seed(0)
    VidLLM(cfg, tokenizer).save_pretrained(tmp_path / "model")
    frames = np.random.default_rng(0).integers(0, 256, (3, 84, 112, 3), dtype=np.uint8)
    bf16 = VidLLMPipeline.from_pretrained(tmp_path / "model", device="cuda", dtype="bfloat16")
    fp32 = VidLLMPipeline.from_pretrained(tmp_path / "model", device="cuda")
    assert bf16.compute_dtype == torch.bfloat16 and next(bf16.model.parameters()).device.type == "cuda"
    rec16, rec32 = bf16.reconstruct(frames), fp32.reconstruct(frames)
    assert np.isfinite(rec16.points).all() and rec16.depth.shape == rec32.depth.shape
    rel = np.median(np.abs(rec16.depth - rec32.depth) / np.maximum(np.abs(rec32.depth), 1e-6))
    assert rel < 0.05, f"bf16 depth differs from fp32 by {rel:.3f} (median relative)"
    answer = bf16.answer(frames, "what color is the chair")
    assert isinstance(answer.text, str) and np.isfinite(answer.boxes).all()
