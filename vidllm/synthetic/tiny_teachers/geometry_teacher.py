"""The geometry teacher: a tiny VGGT-style :class:`recon.model.ReconstructionModel` trained from
scratch on the synthetic scenes' GT depth and camera poses with :class:`recon.losses.ReconLoss`.

Its sizes are the student's (``encoder`` and ``recon`` of a :class:`~vidllm.config.VidLLMConfig`,
``encoder.kind: dinov2``), so the saved file both gives the stage-1 geometry teacher
(:func:`vidllm.training.frozen_teachers.load_geometry_teacher`, its ``aggregator.patch_embed``) and
initialises the student's encoder + reconstruction branch through the VGGT loader.

Output (``<out>/``): ``model.pt`` — weights only, official VGGT key layout
(:func:`recon.vggt_loader.save_vggt_state_dict`) — and ``meta.json`` with the steps, losses,
held-out figures (trained and untrained) and ``vggt_overrides``: the sizes the weights do not reveal,
to pass as ``from_vggt_checkpoint(path, **overrides)`` / ``load_geometry_teacher(path, **overrides)``.

Held-out figures (validation scenes, fixed clips): depth AbsRel after per-image median scaling
(:func:`vidllm.metrics.recon_metrics.depth_metrics`, ``alignment="median"``) and the relative camera
rotation error over frame pairs (mean degrees and RRA@15, :func:`vidllm.metrics.recon_metrics.relative_pose_errors`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recon.config import EncoderConfig, ReconConfig
from recon.losses import ReconLoss
from recon.model import ReconstructionModel
from recon.vggt_loader import save_vggt_state_dict
from vidllm.config import VidLLMConfig
from vidllm.io import atomic_write
from vidllm.metrics.recon_metrics import depth_metrics, pose_metrics_from_errors, relative_pose_errors
from vidllm.synthetic.tiny_teachers.loop import train_loop
from vidllm.synthetic.tiny_teachers.scenes import SceneFrames, clip_windows, load_split_scenes
from vidllm.synthetic.tiny_teachers.teacher_config import TeacherTrainConfig

__all__ = [
    "geometry_configs",
    "vggt_overrides",
    "sample_clips",
    "reverse_clips",
    "eval_clips",
    "evaluate_geometry",
    "train_geometry_teacher",
    "GEOMETRY_FILE",
]

GEOMETRY_FILE = "model.pt"


def geometry_configs(cfg: VidLLMConfig) -> tuple[EncoderConfig, ReconConfig]:
    """The teacher's encoder and branch configs: the student's sizes, a freshly built DINOv2 encoder."""
    if cfg.encoder.kind != "dinov2":
        raise ValueError(
            f"geometry teacher: encoder.kind = {cfg.encoder.kind!r}; the teacher needs 'dinov2' (its patch_embed is the DINOv2 teacher)"
        )
    return replace(cfg.encoder, pretrained_path=None, gradient_checkpointing=False), replace(
        cfg.recon, vggt_checkpoint=None
    )


def vggt_overrides(encoder: EncoderConfig, recon: ReconConfig) -> dict:
    """Sizes a VGGT-layout file does not reveal (keys of :data:`recon.vggt_loader.VGGT_DEFAULTS`)."""
    return {
        "encoder_num_heads": encoder.num_heads,
        "num_heads": recon.aggregator.num_heads,
        "camera_num_heads": recon.camera_head.num_heads,
        "depth_head_layers": list(recon.depth_head.intermediate_layers),
        "camera_iterations": recon.camera_head.iterations,
        "rope_freq": recon.aggregator.rope_freq,
        "frames_chunk_size": recon.depth_head.frames_chunk_size,
    }


def _stack(scenes: list[SceneFrames], picks: list[tuple[int, np.ndarray]]) -> dict[str, Tensor]:
    shapes = {tuple(scenes[i].images.shape[1:]) for i, _ in picks}
    if len(shapes) > 1:
        raise ValueError(
            f"geometry teacher: scenes have different image sizes {sorted(shapes)}; generate them with one --width/--height"
        )
    idx = [(scenes[i], torch.as_tensor(f)) for i, f in picks]
    return {
        key: torch.stack([getattr(s, key)[f] for s, f in idx])
        for key in ("images", "depth", "extrinsics", "intrinsics")
    }


def sample_clips(
    scenes: list[SceneFrames],
    rng: np.random.Generator,
    batch: int,
    clip_frames: int,
    span: int,
    reverse_prob: float = 0.0,
) -> dict[str, Tensor]:
    """A random training batch: ``batch`` clips, each ``clip_frames`` sorted random frames of a random
    window of ``span`` consecutive frames of a random scene, played reversed (descending frame order)
    with probability ``reverse_prob``. Returns ``images [B,S,3,H,W]``, ``depth [B,S,H,W]``,
    ``extrinsics [B,S,3,4]``, ``intrinsics [B,S,3,3]``.

    Extrinsics are world→camera in the scene's model frame (:class:`SceneFrames`); the losses and
    metrics re-express them relative to the clip's first frame (:func:`recon.losses.normalize_gt_scene`,
    frame pairs), so a reversed clip's poses are relative to its new first frame, the scene's later one."""
    picks = []
    for _ in range(batch):  # B clip draws (index bookkeeping only)
        i = int(rng.integers(len(scenes)))
        n = scenes[i].num_frames
        if n < clip_frames:
            raise ValueError(
                f"geometry teacher: scene {scenes[i].scene_id} has {n} valid frames < teachers.clip_frames = {clip_frames}"
            )
        width = min(span, n)
        start = int(rng.integers(n - width + 1))
        frames = np.sort(start + rng.choice(width, clip_frames, replace=False))
        if reverse_prob > 0 and rng.random() < reverse_prob:
            frames = frames[::-1].copy()
        picks.append((i, frames))
    return _stack(scenes, picks)


def reverse_clips(clips: dict[str, Tensor]) -> dict[str, Tensor]:
    """The same clips played backwards: every ``[B, S, ...]`` tensor flipped along ``S``."""
    return {k: v.flip(1) for k, v in clips.items()}


def eval_clips(scenes: list[SceneFrames], clip_frames: int, span: int, per_scene: int) -> dict[str, Tensor]:
    """The fixed held-out clips (:func:`vidllm.synthetic.tiny_teachers.scenes.clip_windows` per scene), stacked as in :func:`sample_clips`."""
    picks = [(i, f) for i, s in enumerate(scenes) for f in clip_windows(s.num_frames, span, clip_frames, per_scene)]
    return _stack(scenes, picks)


@torch.no_grad()
def evaluate_geometry(model: ReconstructionModel, clips: dict[str, Tensor], chunk: int = 4) -> dict[str, float]:
    """Held-out figures of the clips played forwards and reversed (:func:`reverse_clips`).

    Returns depth ``abs_rel`` (median-scaled per image) and ``delta1`` (forwards); mean relative
    rotation error (deg) and RRA@15 forwards (``rot_err_deg``, ``rra@15``), reversed (``*_reversed``)
    and their mean (``rra@15_mean``); ``rra@15_static``: a static camera (identity poses) scored the same way."""
    fwd = _evaluate_order(model, clips, chunk)
    rev = _evaluate_order(model, reverse_clips(clips), chunk)
    return {
        "abs_rel": fwd["abs_rel"],
        "delta1": fwd["delta1"],
        "rot_err_deg": fwd["rot_err_deg"],
        "rra@15": fwd["rra@15"],
        "rot_err_deg_reversed": rev["rot_err_deg"],
        "rra@15_reversed": rev["rra@15"],
        "rra@15_mean": (fwd["rra@15"] + rev["rra@15"]) / 2,
        "rra@15_static": fwd["rra@15_static"],
    }


def _evaluate_order(model: ReconstructionModel, clips: dict[str, Tensor], chunk: int) -> dict[str, float]:
    preds, extr = [], []
    for start in range(0, clips["images"].shape[0], chunk):  # clip chunks bound the memory
        out = model(clips["images"][start : start + chunk])
        preds.append(out["depth"].float())
        extr.append(out["extrinsic"].float())
    depth = torch.cat(preds)
    pred_extr = torch.cat(extr)
    dm = depth_metrics(depth.numpy(), clips["depth"].numpy(), alignment="median")
    rot, trans = zip(*(relative_pose_errors(p.numpy(), g.numpy()) for p, g in zip(pred_extr, clips["extrinsics"])))
    rot, trans = np.concatenate(rot), np.concatenate(trans)
    pm = pose_metrics_from_errors(rot, trans, thresholds=(15.0,))
    identity = torch.zeros_like(clips["extrinsics"][0])
    identity[:, :, :3] = torch.eye(3)
    static = np.concatenate([relative_pose_errors(identity.numpy(), g.numpy())[0] for g in clips["extrinsics"]])
    return {
        "abs_rel": float(dm["abs_rel"]),
        "delta1": float(dm["delta1"]),
        "rot_err_deg": float(rot.mean()),
        "rra@15": float(pm["rra@15"]),
        "rra@15_static": float(np.mean(static < 15.0)),
    }


def train_geometry_teacher(
    data_root: str | Path,
    out_dir: str | Path,
    model_cfg: VidLLMConfig,
    tcfg: TeacherTrainConfig | None = None,
    log: Callable[[str], None] = print,
    train_scenes: list[SceneFrames] | None = None,
    val_scenes: list[SceneFrames] | None = None,
) -> dict:
    """Train, evaluate and save the geometry teacher; returns the meta dict written to ``meta.json``."""
    tcfg = tcfg or TeacherTrainConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    image_size = model_cfg.data.image_size
    train_scenes = (
        train_scenes
        if train_scenes is not None
        else load_split_scenes(data_root, "train", image_size, model_cfg.data.resize_side)
    )
    val_scenes = (
        val_scenes
        if val_scenes is not None
        else load_split_scenes(data_root, "val", image_size, model_cfg.data.resize_side)
    )
    enc_cfg, recon_cfg = geometry_configs(model_cfg)
    torch.manual_seed(tcfg.seed)
    model = ReconstructionModel(enc_cfg, recon_cfg)
    loss_module = ReconLoss(recon_cfg.loss)
    rng = np.random.default_rng([tcfg.seed, 1])
    held_out = eval_clips(
        val_scenes, tcfg.eval_clip_frames or tcfg.clip_frames, tcfg.clip_span, tcfg.eval_clips_per_scene
    )
    model.eval()
    untrained = evaluate_geometry(model, held_out)
    log(f"[geometry teacher] untrained: held-out {', '.join(f'{k} {v:.4g}' for k, v in untrained.items())}")

    def step_loss(_step: int) -> dict[str, Tensor]:
        batch = sample_clips(
            train_scenes, rng, tcfg.geometry_batch, tcfg.clip_frames, tcfg.clip_span, tcfg.reverse_prob
        )
        return loss_module(model(batch["images"]), batch)

    history = train_loop(
        model,
        step_loss,
        lambda: evaluate_geometry(model, held_out),
        max_steps=tcfg.geometry_steps,
        minutes=tcfg.geometry_minutes,
        lr=tcfg.geometry_lr,
        weight_decay=tcfg.geometry_weight_decay,
        warmup=tcfg.geometry_warmup,
        grad_clip=tcfg.grad_clip,
        eval_every=tcfg.eval_every,
        name="geometry",
        log=log,
    )
    model.eval()
    path = save_vggt_state_dict(model, out_dir / GEOMETRY_FILE)
    final = {k: v for k, v in history["evals"][-1].items() if k not in ("step", "seconds", "train_loss")}
    meta = {
        "format": "vggt",
        "file": path.name,
        "vggt_overrides": vggt_overrides(enc_cfg, recon_cfg),
        "encoder": asdict(enc_cfg),
        "recon": asdict(recon_cfg),
        "image_hw": list(held_out["images"].shape[-2:]),
        "steps": history["steps"],
        "train_seconds": round(history["seconds"], 1),
        "seconds": round(time.perf_counter() - t0, 1),
        "first_loss": history["losses"][0],
        "final_loss": float(np.mean(history["losses"][-min(20, len(history["losses"])) :])),
        "final_loss_terms": history["final_terms"],
        "loss_curve": history["losses"],
        "held_out": {"untrained": untrained, "trained": final, "history": history["evals"]},
        "held_out_scenes": [s.scene_id for s in val_scenes],
        "train_scenes": [s.scene_id for s in train_scenes],
        "config": asdict(tcfg),
    }
    with atomic_write(out_dir / "meta.json", "w") as handle:
        handle.write(json.dumps(meta, indent=1))
    return meta
