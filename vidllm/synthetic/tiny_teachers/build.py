"""Make both stage-1 teachers for a model config (used by ``vidllm teachers`` and by ``vidllm fit
--stage 1`` when the configured teacher files are missing and the data is synthetic)."""

from __future__ import annotations

import logging
from pathlib import Path

from vidllm.config import VidLLMConfig, load_config
from vidllm.synthetic.tiny_teachers.teacher_config import TeacherTrainConfig

__all__ = ["build_teachers", "default_teacher_paths"]

_log = logging.getLogger(__name__)


def default_teacher_paths(out: str | Path) -> dict[str, Path]:
    """Where :func:`build_teachers` writes: ``<out>/geometry/model.pt`` and ``<out>/semantic``."""
    out = Path(out)
    return {"geometry": out / "geometry" / "model.pt", "semantic": out / "semantic"}


def build_teachers(
    config: str | Path | VidLLMConfig,
    out: str | Path,
    data_root: str | Path | None = None,
    tcfg: TeacherTrainConfig | None = None,
) -> dict[str, Path]:
    """Train the geometry and semantic teachers on synthetic scenes and save them under ``out``."""
    from dataclasses import replace

    from vidllm.data.datamodule import ensure_synthetic
    from vidllm.synthetic.tiny_teachers.geometry_teacher import train_geometry_teacher
    from vidllm.synthetic.tiny_teachers.semantic_teacher import train_semantic_teacher

    cfg = config if isinstance(config, VidLLMConfig) else load_config(config)
    data_cfg = replace(cfg.data, root=str(data_root)) if data_root else cfg.data
    root = ensure_synthetic(data_cfg)
    paths = default_teacher_paths(out)
    log = _log.info if _log.isEnabledFor(logging.INFO) else print
    train_geometry_teacher(root, paths["geometry"].parent, cfg, tcfg, log=log)
    train_semantic_teacher(
        root, paths["semantic"], cfg.data.image_size, tcfg, log=log, resize_side=cfg.data.resize_side
    )
    return paths
