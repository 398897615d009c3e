"""The tiny synthetic-data teachers a ``vidllm fit`` run makes when its config names them but the files are
missing (what ``vidllm teachers --out DIR`` writes), so a stage-1 run on synthetic data needs no other step."""

from __future__ import annotations

from pathlib import Path

from vidllm.config import VidLLMConfig

__all__ = ["teachers_to_build", "ensure_teachers"]


def teachers_to_build(cfg: VidLLMConfig) -> list[str]:
    """The missing teacher files :func:`ensure_teachers` will make (synthetic data, default layout); else []."""
    d = cfg.train.distill
    needed = []
    if cfg.train.stage == 1:
        needed += [
            v for k, v in (("geometry", d.geometry_teacher), ("semantic", d.semantic_teacher)) if k in d.teachers and v
        ]
    if cfg.recon.vggt_checkpoint and not cfg.train.init_from:
        needed.append(cfg.recon.vggt_checkpoint)
    missing = [v for v in needed if not Path(v).exists()]
    if not missing or cfg.data.source != "synthetic":
        return []
    from vidllm.synthetic.tiny_teachers.build import default_teacher_paths

    layout = {str(p) for p in default_teacher_paths(_teacher_dir(missing)).values()}
    if any(str(Path(v)) not in layout for v in missing):
        return []  # not the default layout: check_checkpoints reports the missing files
    return missing


def _teacher_dir(missing: list[str]) -> Path:
    return Path(missing[0]).parent.parent if Path(missing[0]).name == "model.pt" else Path(missing[0]).parent


def ensure_teachers(cfg: VidLLMConfig) -> None:
    """On synthetic data, make the tiny teachers (``vidllm teachers``) when a file the run needs is
    missing — the stage-1 teachers, or ``recon.vggt_checkpoint`` when no ``train.init_from`` is
    given — and the configured paths are the layout ``vidllm teachers --out DIR`` writes."""
    missing = teachers_to_build(cfg)
    if not missing:
        return
    from vidllm.synthetic.tiny_teachers.build import build_teachers

    out = _teacher_dir(missing)
    print(
        f"vidllm fit: teacher files not found; training the tiny synthetic teachers into {out} (vidllm teachers)",
        flush=True,
    )
    build_teachers(cfg, out)
