"""Every shipped ablation / baseline / stage config builds at tiny size and runs one training step."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.helpers import micro_config, micro_run_overrides
from vidllm.config import config_from_dict
from vidllm.data.datamodule import collate_clips
from vidllm.data.dataset import VidLLMDataset
from vidllm.training.module import VidLLMModule
from vidllm.training.stages import trainable_modules

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DELTAS = sorted([*CONFIGS.glob("ablations/*.yaml"), *CONFIGS.glob("baselines/*.yaml"), CONFIGS / "stage1.yaml", CONFIGS / "stage2.yaml"])


def _with_delta(path: Path, overrides: dict) -> object:
    delta = OmegaConf.to_container(OmegaConf.load(path))
    delta.pop("defaults", None)
    cfg = config_from_dict(delta, source=str(path), base=micro_config())
    return config_from_dict(overrides, source="test", base=cfg)


def _batch(cfg):
    dataset = VidLLMDataset(cfg.data, "train", tasks=["recon", "qa", "grounding", "caption"])
    by_task = {}
    for i, (task, _) in enumerate(dataset.samples):
        by_task.setdefault(task, i)
    return collate_clips([dataset[by_task[t]] for t in ("qa", "grounding", "caption", "recon")])


@pytest.mark.parametrize("path", DELTAS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_trains_one_step(path, synthetic_root, teacher_files, tokenizer):
    overrides = micro_run_overrides(synthetic_root, teacher_files)
    cfg = _with_delta(path, overrides)
    torch.manual_seed(0)
    module = VidLLMModule(cfg, tokenizer)
    optimizer = module.configure_optimizers()["optimizer"]
    loss = module.training_step(_batch(cfg), 0)
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    grads = {name.split(".", 1)[0] for name, p in module.model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert grads <= set(trainable_modules(cfg.train.stage)), f"frozen modules received gradients: {grads}"
    assert {"encoder", "cta"} & grads or cfg.cta.mode in ("none", "passthrough")
