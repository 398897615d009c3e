"""Load (and write back) the official VGGT checkpoint layout.

VGGT's ``model.pt`` holds ``aggregator.*`` (with the DINOv2 ViT under ``aggregator.patch_embed.*``
in the timm/dinov2 layout), ``camera_head.*``, ``depth_head.*`` and optionally ``point_head.*`` and
``track_head.*`` (not part of this branch: skipped and logged). The aggregator blocks, camera head
and DPT head use VGGT's parameter names here, so they map one to one; the DINOv2 part maps onto
the transformers ``Dinov2WithRegistersModel`` (fused ``qkv`` split into q/k/v, ``ls*.gamma`` →
``layer_scale*.lambda1``, ``norm`` → ``layernorm``, ...). The conv patch embed
(``aggregator.patch_embed.proj``) maps onto ``encoder.patch_embed``.

Extra keys (not in VGGT): ``camera_head.relative_pose.*`` (:data:`RELATIVE_POSE_PREFIX`) hold the
optional patch-grid relative-pose module of the camera head (``recon.camera_head.relative_pose``).
They load when the model has the module (its sizes are inferred from them), and are refused by
name otherwise (``strict``) or skipped with a warning naming the option.

Sizes are inferred from the weights; what the weights do not reveal comes from keyword overrides
with VGGT-1B defaults (:data:`VGGT_DEFAULTS`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from recon.config import (
    AggregatorConfig,
    CameraHeadConfig,
    DepthHeadConfig,
    EncoderConfig,
    ReconConfig,
    RelativePoseConfig,
)
from recon.files import atomic_write
from recon.heads.relative_pose import correlation_width
from recon.model import ReconstructionModel
from recon.vggt_keys import (  # re-exported: these names have always been importable from here
    _DINO,
    BRANCH_PARTS,
    RELATIVE_POSE_PREFIX,
    SKIPPED_HEADS,  # noqa: F401
    branch_parts,
    to_vggt_state_dict,
    vggt_to_branch,
)
from recon.weights_file import read_weights_file, unwrap_state_dict

_log = logging.getLogger(__name__)

VGGT_DEFAULTS = {
    "num_heads": 16,
    "camera_num_heads": 16,
    "depth_head_layers": [4, 11, 17, 23],
    "camera_iterations": 4,
    "encoder_num_heads": None,
    "rope_freq": 100.0,
    "frames_chunk_size": 8,
    "global_merge_ratio": 0.0,
    "global_merge_start": 0,
}
"""Overrides accepted by :func:`from_vggt_checkpoint` (``encoder_num_heads`` None = hidden_size // 64;
``global_merge_*``: token merging in the global blocks, see :class:`recon.config.AggregatorConfig`)."""


@dataclass
class LoadReport:
    """Outcome of loading: keys of the branch not in the checkpoint, checkpoint keys not used, skipped heads."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- files
def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read a ``.pt``/``.pth`` (``torch.load(weights_only=True)``) or ``.safetensors`` state dict
    (wrappers and the DDP ``module.`` prefix removed by :func:`recon.weights_file.unwrap_state_dict`)."""
    try:
        obj = read_weights_file(path)
    except ValueError as err:
        raise ValueError(f"VGGT checkpoint {err}") from None
    try:
        return unwrap_state_dict(obj)
    except ValueError as err:
        raise ValueError(f"VGGT checkpoint {path}: {err}") from None


def save_vggt_state_dict(model: nn.Module | None, path: str | Path, parts: dict[str, nn.Module] | None = None) -> Path:
    """Write ``model``'s branch (or ``parts``) in VGGT layout to ``path`` (``.safetensors`` or torch ``.pt``)."""
    path = Path(path)
    sd = {k: v.detach().cpu().contiguous() for k, v in to_vggt_state_dict(model, parts).items()}
    with atomic_write(path, None) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(sd, str(tmp))
        else:
            torch.save(sd, tmp)
    return path


# --------------------------------------------------------------------------- size inference
def _count(sd: dict, prefix: str) -> int:
    pat = re.compile("^" + re.escape(prefix) + r"(\d+)\.")
    idx = {int(m.group(1)) for k in sd if (m := pat.match(k))}
    return max(idx) + 1 if idx else 0


def _default_intermediates(num_layers: int) -> list[int]:
    """DPT-style intermediate DINOv2 blocks: ViT-L [4, 11, 17, 23], ViT-S/B [2, 5, 8, 11], else evenly spaced."""
    known = {24: [4, 11, 17, 23], 12: [2, 5, 8, 11]}
    if num_layers in known:
        return known[num_layers]
    return sorted({max(0, round((k + 1) * num_layers / 4) - 1) for k in range(4)})


def _need(sd: dict, key: str) -> Tensor:
    if key not in sd:
        raise ValueError(f"VGGT checkpoint has no {key!r}; cannot infer the model size")
    return sd[key]


def infer_configs(sd: dict[str, Tensor], **overrides) -> tuple[EncoderConfig, ReconConfig]:
    """Encoder and branch configs from a VGGT-layout state dict (+ overrides, see :data:`VGGT_DEFAULTS`)."""
    unknown = sorted(set(overrides) - set(VGGT_DEFAULTS))
    if unknown:
        raise ValueError(f"from_vggt_checkpoint: unknown overrides {unknown}; allowed: {sorted(VGGT_DEFAULTS)}")
    opt = {**VGGT_DEFAULTS, **overrides}
    dim = _need(sd, "aggregator.camera_token").shape[-1]
    depth = _count(sd, "aggregator.frame_blocks.")
    num_reg = _need(sd, "aggregator.register_token").shape[2]
    fc1 = _need(sd, "aggregator.frame_blocks.0.mlp.fc1.weight")
    agg = AggregatorConfig(
        depth=depth,
        num_heads=opt["num_heads"],
        mlp_ratio=fc1.shape[0] / dim,
        num_register_tokens=num_reg,
        qk_norm="aggregator.frame_blocks.0.attn.q_norm.weight" in sd,
        rope_freq=opt["rope_freq"],
        global_merge_ratio=opt["global_merge_ratio"],
        global_merge_start=opt["global_merge_start"],
    )
    if _DINO + "patch_embed.proj.weight" in sd:
        proj = sd[_DINO + "patch_embed.proj.weight"]
        n_pos = _need(sd, _DINO + "pos_embed").shape[1] - 1
        side = int(round(n_pos**0.5))
        enc_fc1 = _need(sd, _DINO + "blocks.0.mlp.fc1.weight")
        num_layers = _count(sd, _DINO + "blocks.")
        reg = sd.get(_DINO + "register_tokens")
        enc = EncoderConfig(
            kind="dinov2",
            hidden_size=proj.shape[0],
            num_layers=num_layers,
            num_heads=opt["encoder_num_heads"] or max(1, proj.shape[0] // 64),
            mlp_ratio=enc_fc1.shape[0] / proj.shape[0],
            patch_size=proj.shape[-1],
            num_register_tokens=0 if reg is None else reg.shape[1],
            pretrain_image_size=side * proj.shape[-1],
            intermediate_layers=_default_intermediates(num_layers),
        )
    else:
        proj = _need(sd, "aggregator.patch_embed.proj.weight")
        enc = EncoderConfig(
            kind="conv",
            hidden_size=proj.shape[0],
            num_layers=1,
            num_heads=1,
            patch_size=proj.shape[-1],
            intermediate_layers=[0],
        )
    if enc.hidden_size != dim:
        raise ValueError(f"VGGT checkpoint: patch embed width {enc.hidden_size} differs from aggregator width {dim}")
    cam = CameraHeadConfig(
        trunk_depth=_count(sd, "camera_head.trunk."),
        num_heads=opt["camera_num_heads"],
        mlp_ratio=_need(sd, "camera_head.trunk.0.mlp.fc1.weight").shape[0] / (2 * dim),
        iterations=opt["camera_iterations"],
        relative_pose=_infer_relative_pose(sd),
    )
    dpt = DepthHeadConfig(
        intermediate_layers=list(opt["depth_head_layers"]),
        features=_need(sd, "depth_head.scratch.layer1_rn.weight").shape[0],
        out_channels=[_need(sd, f"depth_head.projects.{i}.weight").shape[0] for i in range(4)],
        frames_chunk_size=opt["frames_chunk_size"],
    )
    return enc, ReconConfig(aggregator=agg, camera_head=cam, depth_head=dpt)


def _infer_relative_pose(sd: dict[str, Tensor]) -> RelativePoseConfig:
    """The relative-pose module's sizes from its ``camera_head.relative_pose.*`` weights (disabled when there are none)."""
    if not any(k.startswith(RELATIVE_POSE_PREFIX) for k in sd):
        return RelativePoseConfig()
    channels = _need(sd, RELATIVE_POSE_PREFIX + "reduce.weight").shape[0]
    first = _need(sd, RELATIVE_POSE_PREFIX + "mlp.0.weight")
    options = _need(sd, RELATIVE_POSE_PREFIX + "options")
    if options.shape != (2,):
        raise ValueError(
            f"VGGT checkpoint: {RELATIVE_POSE_PREFIX}options must hold [correlation, center], got shape {tuple(options.shape)}"
        )
    corr, center = (bool(v) for v in options.tolist())
    width = first.shape[1]  # 2·c·g² (+ (2g − 1)² with the correlation profile)
    fits = [
        g
        for g in range(1, int((width / (2 * channels)) ** 0.5) + 2)
        if 2 * channels * g * g + (correlation_width(g) if corr else 0) == width
    ]
    if len(fits) != 1:
        raise ValueError(
            f"VGGT checkpoint: {RELATIVE_POSE_PREFIX}mlp.0.weight {tuple(first.shape)} does not match {channels} channels on a "
            f"square grid (2·c·g²{' + (2g − 1)²' if corr else ''})"
        )
    return RelativePoseConfig(
        enabled=True, channels=channels, grid=fits[0], hidden=first.shape[0], correlation=corr, center=center
    )


def load_vggt_weights(
    model: nn.Module | None, sd: dict[str, Tensor], strict: bool = True, parts: dict[str, nn.Module] | None = None
) -> LoadReport:
    """Copy a VGGT-layout state dict into ``model.{encoder, aggregator, camera_head, depth_head}``
    (or into ``parts``, e.g. the shared encoder and reconstruction branch of the full model).

    A shape mismatch raises ``ValueError`` naming the key and both shapes. Missing and unexpected
    keys are logged by name; with ``strict`` they raise ``ValueError`` instead.
    """
    parts = branch_parts(model, parts)
    converted, unused, skipped = vggt_to_branch(sd, parts["encoder"])
    target = {f"{p}.{k}": v for p in BRANCH_PARTS for k, v in parts[p].state_dict().items()}
    for key, val in converted.items():
        if key in target and tuple(target[key].shape) != tuple(val.shape):
            raise ValueError(
                f"VGGT checkpoint: shape mismatch for {key!r}: checkpoint {tuple(val.shape)} vs model {tuple(target[key].shape)}"
            )
    report = LoadReport(
        missing=sorted(k for k in target if k not in converted),
        unexpected=sorted(unused + [k for k in converted if k not in target]),
        skipped=skipped,
    )
    extra_rel = [k for k in report.unexpected if k.startswith(RELATIVE_POSE_PREFIX)]
    if extra_rel:  # a file trained with the option, loaded into a model without it
        msg = (
            f"VGGT checkpoint holds the patch-grid relative-pose module ({len(extra_rel)} {RELATIVE_POSE_PREFIX}* keys) but the model "
            f"has none; set recon.camera_head.relative_pose.enabled: true to load it"
        )
        if strict:
            raise ValueError(msg)
        _log.warning(msg + " (skipped)")
        report.unexpected = [k for k in report.unexpected if not k.startswith(RELATIVE_POSE_PREFIX)]
        report.skipped = report.skipped + extra_rel
    if skipped:
        _log.info(
            "VGGT checkpoint: skipped %d keys of heads this branch does not have (point_head/track_head)", len(skipped)
        )
    for kind, keys in (("missing", report.missing), ("unexpected", report.unexpected)):
        if keys:
            msg = f"VGGT checkpoint: {len(keys)} {kind} keys: {', '.join(keys[:20])}{' ...' if len(keys) > 20 else ''}"
            if strict:
                raise ValueError(msg)
            _log.warning(msg)
    with torch.no_grad():
        for p in BRANCH_PARTS:
            prefix = p + "."
            part_sd = {k[len(prefix) :]: v for k, v in converted.items() if k.startswith(prefix) and k in target}
            parts[p].load_state_dict(part_sd, strict=False)
    return report


def from_vggt_checkpoint(path_or_state_dict: str | Path | dict[str, Tensor], strict: bool = True, **overrides):
    """Build a :class:`recon.model.ReconstructionModel` from a VGGT checkpoint (path or state dict).

    Overrides (VGGT-1B defaults): ``num_heads``, ``camera_num_heads``, ``depth_head_layers``,
    ``camera_iterations``, ``encoder_num_heads``, ``rope_freq``, ``frames_chunk_size``.
    The load report is attached as ``model.vggt_load_report``.
    """
    sd = path_or_state_dict if isinstance(path_or_state_dict, dict) else load_state_dict_file(path_or_state_dict)
    enc_cfg, cfg = infer_configs(sd, **overrides)
    model = ReconstructionModel(enc_cfg, cfg)
    model.vggt_load_report = load_vggt_weights(model, sd, strict=strict)
    return model.eval()
