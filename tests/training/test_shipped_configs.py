"""Every YAML under configs/ trains as shipped: loaded by the loader ``vidllm fit`` uses (``defaults:``
layering and the stage defaults intact), shrunk only in sizes and paths, one optimiser step in each stage
the config is meant for. Trainer settings files (configs/strategies/) build their strategy."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from tests.helpers import SHIPPED_SIZES, micro_run_overrides
from vidllm.config import _read_yaml_layers
from vidllm.data.datamodule import collate_clips
from vidllm.data.dataset import VidLLMDataset
from vidllm.training.fit_args import resolve_config
from vidllm.training.module import VidLLMModule
from vidllm.training.paths import check_checkpoints
from vidllm.training.stages import trainable_modules
from vidllm.training.strategies import build_strategy, read_trainer_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ALL = sorted(CONFIGS.rglob("*.yaml"))
TRAINER_FILES = [p for p in ALL if p.parent.name == "strategies"]
MODEL_FILES = [p for p in ALL if p not in TRAINER_FILES]


def _stages(path: Path) -> list[int]:
    """The stage a config fixes (``train.stage`` in it or a layer under it), else both."""
    stage = (_read_yaml_layers(path).get("train") or {}).get("stage")
    return [int(stage)] if stage is not None else [1, 2]


CASES = [pytest.param(p, s, id=f"{p.relative_to(CONFIGS)}-stage{s}") for p in MODEL_FILES for s in _stages(p)]


def _pairs(data_root, teacher_dir) -> dict[str, str]:
    """Sizes and paths only, as ``vidllm fit``'s ``--KEY VALUE`` pairs."""
    pairs = dict(item.split("=", 1) for item in SHIPPED_SIZES)

    def flatten(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                flatten(value, f"{prefix}{key}.")
            else:
                pairs[f"{prefix}{key}"] = "null" if value is None else str(value)

    flatten(micro_run_overrides(data_root, teacher_dir))
    return pairs


def _batch(cfg):
    dataset = VidLLMDataset(cfg.data, "train", tasks=["recon", "qa", "grounding", "caption"])
    by_task = {}
    for i, (task, _) in enumerate(dataset.samples):
        by_task.setdefault(task, i)
    return collate_clips([dataset[by_task[t]] for t in ("qa", "grounding", "caption", "recon")])


def test_every_shipped_yaml_is_covered():
    assert {p.relative_to(CONFIGS).parts[0] for p in MODEL_FILES} >= {
        "ablations",
        "baselines",
        "vidllm_large.yaml",
        "tiny.yaml",
        "demo.yaml",
    }
    assert len(CASES) >= len(MODEL_FILES) and len(TRAINER_FILES) == 4


@pytest.mark.parametrize("path,stage", CASES)
def test_config_trains_one_step_as_shipped(path, stage, synthetic_root, teacher_files, tokenizer):
    cfg = resolve_config(str(path), stage, _pairs(synthetic_root, teacher_files))
    assert cfg.train.stage == stage
    check_checkpoints(cfg)  # the path overrides leave no missing checkpoint
    torch.manual_seed(0)
    module = VidLLMModule(cfg, tokenizer)
    optimizer = module.configure_optimizers()["optimizer"]
    before = [p.detach().clone() for g in optimizer.param_groups for p in g["params"]]
    loss = module.training_step(_batch(cfg), 0)
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    after = [p for g in optimizer.param_groups for p in g["params"]]
    assert any(not torch.equal(a, b) for a, b in zip(after, before)), "the optimiser step changed no parameter"
    grads = {
        name.split(".", 1)[0]
        for name, p in module.model.named_parameters()
        if p.grad is not None and p.grad.abs().sum() > 0
    }
    assert grads <= set(trainable_modules(stage)), f"frozen modules received gradients: {grads}"
    assert {"encoder", "cta"} & grads or cfg.cta.mode == "none"
    if cfg.train.lr_multipliers:  # every configured rate reaches a group of its own
        names = {g.get("name", "").removesuffix("/no_decay") for g in optimizer.param_groups}
        trained = {k for k in cfg.train.lr_multipliers if any(n == k for n in names)}
        frozen = {
            k
            for k in cfg.train.lr_multipliers
            if not any(p.requires_grad for n, p in module.model.named_parameters() if n.startswith(k + "."))
        }
        assert trained | frozen == set(cfg.train.lr_multipliers)


@pytest.mark.parametrize("path", TRAINER_FILES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_trainer_file_builds_its_strategy(path):
    data = read_trainer_config(path)
    if data["strategy"]["class_path"].endswith("DeepSpeedStrategy"):
        pytest.importorskip(
            "deepspeed", reason="DeepSpeed is not installed (pip install deepspeed); its strategy cannot be built"
        )
    strategy = build_strategy(data["strategy"])
    module, _, name = data["strategy"]["class_path"].rpartition(".")
    assert type(strategy) is getattr(importlib.import_module(module), name)
