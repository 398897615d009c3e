"""The checkpoint files a run reads, checked before any data or model work.

``vidllm fit`` calls :func:`check_checkpoints` right after resolving the config, so a config that names
a missing checkpoint (a paper-scale config without its downloads, a typo) fails at once with one line
naming the config key and the path — not after data generation, teacher training or model building.
"""

from __future__ import annotations

from pathlib import Path

from vidllm.config import VidLLMConfig
from vidllm.errors import ConfigError

__all__ = ["checkpoint_paths", "missing_checkpoints", "check_checkpoints"]

TEACHER_KEYS = ("recon.vggt_checkpoint", "train.distill.")
"""Keys whose files `vidllm teachers` makes for synthetic data (named in the error's hint)."""


def checkpoint_paths(cfg: VidLLMConfig) -> list[tuple[str, str]]:
    """``(config key, path)`` of every checkpoint file or directory the run will read, in config order:
    ``encoder.pretrained_path``, ``recon.vggt_checkpoint`` (used when there is no ``train.init_from``),
    ``llm.path``, ``llm.tokenizer_path``, ``train.init_from`` and, in stage 1, the teachers in
    ``train.distill.teachers``."""
    d = cfg.train.distill
    pairs = [
        ("encoder.pretrained_path", cfg.encoder.pretrained_path),
        ("recon.vggt_checkpoint", None if cfg.train.init_from else cfg.recon.vggt_checkpoint),
        ("llm.path", cfg.llm.path),
        ("llm.tokenizer_path", cfg.llm.tokenizer_path),
        ("train.init_from", cfg.train.init_from),
    ]
    if cfg.train.stage == 1:
        pairs += [(f"train.distill.{t}_teacher", getattr(d, f"{t}_teacher")) for t in d.teachers]
    return [(key, str(value)) for key, value in pairs if value]


def missing_checkpoints(cfg: VidLLMConfig, will_create: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The entries of :func:`checkpoint_paths` that do not exist, except paths in ``will_create``
    (files the run makes itself, e.g. the tiny synthetic teachers)."""
    made = {str(Path(p)) for p in will_create}
    return [
        (key, path) for key, path in checkpoint_paths(cfg) if not Path(path).exists() and str(Path(path)) not in made
    ]


def check_checkpoints(cfg: VidLLMConfig, will_create: tuple[str, ...] = ()) -> None:
    """Raise :class:`ConfigError` (one line: each missing key and its path) if a checkpoint is missing."""
    missing = missing_checkpoints(cfg, will_create)
    if missing:
        named = "; ".join(f"{key} = {path!r}" for key, path in missing)
        hint = "point the key at a local copy or set it to null"
        if any(key.startswith(TEACHER_KEYS) for key, _ in missing):
            hint += "; the tiny synthetic-data teachers are made by `vidllm teachers --out DIR`"
        raise ConfigError(f"checkpoint not found: {named} ({hint})")
