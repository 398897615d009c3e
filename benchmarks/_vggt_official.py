"""Our reconstruction branch and the official VGGT code side by side, with the same weights.

The official code (facebookresearch/vggt) is not part of this repository and is never imported by
the package: :func:`import_official` loads the ``vggt`` package from a directory the user names.
Only its ``Aggregator``, ``CameraHead`` and ``DPTHead`` are used (``VGGT`` itself also builds the
point and track heads, which the reconstruction branch does not have), wired as ``VGGT.forward``
wires them for the camera and depth predictions (:class:`OfficialRecon`).

Weights go one way: our :class:`recon.model.ReconstructionModel` (random init, then
:func:`spread_weights`) writes its VGGT-layout state dict (``vggt_state_dict()``), which the
official modules load with ``strict=True``. Output mapping (ours → official): ``pose_enc [B,S,9]``
→ ``pose_enc [B,S,9]`` (last refinement iteration), ``depth [B,S,H,W]`` → ``depth[..., 0]``
(official ``[B,S,H,W,1]``), ``depth_conf [B,S,H,W]`` → ``depth_conf [B,S,H,W]``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

from recon.config import AggregatorConfig, CameraHeadConfig, DepthHeadConfig, EncoderConfig, ReconConfig

COMPARED = ("pose_enc", "depth", "depth_conf")
"""Outputs compared between the two implementations (always)."""
TOKENS = "geometry_tokens"
"""Also compared when our output has it: the last aggregator layer's patch tokens ``[B, S, P, 2C]`` (the official
output list's last entry without the camera and register tokens) — a direct check of the aggregator, whose effect on
the near-constant depth of a randomly initialised DPT head is small."""


class OfficialImportError(RuntimeError):
    """The directory given as the official root does not provide an importable official ``vggt`` package."""


def bench_configs(
    dim: int = 256, depth: int = 8, heads: int | None = None, frames_chunk_size: int = 8
) -> tuple[EncoderConfig, ReconConfig]:
    """Our configs of the benchmark model: conv patch embed (patch 14) of width ``dim``, ``depth`` frame +
    ``depth`` global blocks with ``heads`` heads (default ``dim // 64``), and VGGT-1B's head proportions scaled to
    ``dim``: camera trunk of 4 blocks with ``2·dim // 64`` heads and 4 iterations; DPT on 4 evenly spaced layers
    (the last one included), ``features = dim // 4``, ``out_channels = [dim/4, dim/2, dim, dim]``."""
    heads = heads or max(1, dim // 64)
    if dim % heads or dim % 4 or depth < 1:
        raise ValueError(
            f"bench_configs: dim ({dim}) must be divisible by heads ({heads}) and by 4; depth ({depth}) >= 1"
        )
    layers = sorted({max(0, round((k + 1) * depth / 4) - 1) for k in range(4)})
    if len(layers) != 4:  # fewer than 4 distinct layers: repeat the last ones, as small VGGT-layout tests do
        layers = [min(i, depth - 1) for i in range(4)]
    enc = EncoderConfig(kind="conv", hidden_size=dim, num_layers=1, num_heads=1, patch_size=14, intermediate_layers=[0])
    cfg = ReconConfig(
        aggregator=AggregatorConfig(depth=depth, num_heads=heads),
        camera_head=CameraHeadConfig(trunk_depth=4, num_heads=max(1, 2 * dim // 64), iterations=4),
        depth_head=DepthHeadConfig(
            intermediate_layers=layers,
            features=dim // 4,
            out_channels=[dim // 4, dim // 2, dim, dim],
            frames_chunk_size=frames_chunk_size,
        ),
    )
    return enc, cfg


def official_kwargs(enc: EncoderConfig, cfg: ReconConfig, image_size: int) -> dict[str, dict]:
    """Constructor arguments of the official ``Aggregator``, ``CameraHead`` and ``DPTHead`` equal to our configs."""
    dim, agg, cam, dpt = enc.hidden_size, cfg.aggregator, cfg.camera_head, cfg.depth_head
    return {
        "aggregator": dict(
            img_size=image_size,
            patch_size=enc.patch_size,
            embed_dim=dim,
            depth=agg.depth,
            num_heads=agg.num_heads,
            mlp_ratio=agg.mlp_ratio,
            num_register_tokens=agg.num_register_tokens,
            patch_embed="conv",
            qk_norm=agg.qk_norm,
            rope_freq=agg.rope_freq,
            init_values=agg.layerscale_init,
        ),
        "camera_head": dict(
            dim_in=2 * dim, trunk_depth=cam.trunk_depth, num_heads=cam.num_heads, mlp_ratio=cam.mlp_ratio
        ),
        "depth_head": dict(
            dim_in=2 * dim,
            patch_size=enc.patch_size,
            output_dim=2,
            activation="exp",
            conf_activation="expp1",
            features=dpt.features,
            out_channels=list(dpt.out_channels),
            intermediate_layer_idx=list(dpt.intermediate_layers),
        ),
        "forward": dict(num_iterations=cam.iterations, frames_chunk_size=dpt.frames_chunk_size or None),
    }


def import_official(root: str | Path | None):
    """Import ``vggt.models.aggregator``, ``vggt.heads.camera_head`` and ``vggt.heads.dpt_head`` from ``root``
    (the directory that contains the official ``vggt`` package); returns ``(Aggregator, CameraHead, DPTHead)``."""
    if not root:
        raise OfficialImportError(
            "--official-root is required: a directory containing the official facebookresearch/vggt `vggt` package "
            "(e.g. /tmp/vggt_official with /tmp/vggt_official/vggt/models/aggregator.py)"
        )
    root = Path(root).resolve()
    marker = root / "vggt" / "models" / "aggregator.py"
    if not marker.is_file():
        raise OfficialImportError(
            f"--official-root {root}: no {marker.relative_to(root)} (expected the official package)"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        modules = [
            importlib.import_module(m)
            for m in ("vggt.models.aggregator", "vggt.heads.camera_head", "vggt.heads.dpt_head")
        ]
    except Exception as err:  # any import failure of foreign code: report it with the root
        raise OfficialImportError(
            f"--official-root {root}: importing the official vggt modules failed: {err!r}"
        ) from err
    loaded_from = Path(modules[0].__file__).resolve()
    if root not in loaded_from.parents:
        raise OfficialImportError(
            f"--official-root {root}: `vggt` was imported from {loaded_from} instead (name clash)"
        )
    return modules[0].Aggregator, modules[1].CameraHead, modules[2].DPTHead


class OfficialRecon(nn.Module):
    """The official aggregator + camera head + depth head, run as ``VGGT.forward`` runs them."""

    def __init__(self, classes, kwargs: dict[str, dict]) -> None:
        super().__init__()
        aggregator_cls, camera_cls, dpt_cls = classes
        self.aggregator = aggregator_cls(**kwargs["aggregator"])
        self.camera_head = camera_cls(**kwargs["camera_head"])
        self.depth_head = dpt_cls(**kwargs["depth_head"])
        self.num_iterations = kwargs["forward"]["num_iterations"]
        self.frames_chunk_size = kwargs["forward"]["frames_chunk_size"]

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """images ``[B, S, 3, H, W]`` in [0, 1] → ``pose_enc [B,S,9]``, ``depth [B,S,H,W,1]``, ``depth_conf [B,S,H,W]``
        and the last aggregator layer's patch tokens ``geometry_tokens [B,S,P,2C]``."""
        if images.dim() == 4:
            images = images.unsqueeze(0)
        tokens, patch_start_idx = self.aggregator(images)
        with torch.autocast(images.device.type, enabled=False):
            pose_enc = self.camera_head(tokens, num_iterations=self.num_iterations)[-1]
            depth, depth_conf = self.depth_head(
                tokens, images=images, patch_start_idx=patch_start_idx, frames_chunk_size=self.frames_chunk_size
            )
        last = tokens[-1][:, :, patch_start_idx:]
        return {"pose_enc": pose_enc, "depth": depth, "depth_conf": depth_conf, TOKENS: last}


@torch.no_grad()
def spread_weights(model: nn.Module, seed: int, scale: float = 0.1) -> None:
    """Add N(0, scale²) to every 1-D parameter (norms, biases, LayerScale) and every parameter initialised near zero
    (camera/register tokens, the empty pose token), so that every block changes the output measurably: with
    LayerScale at 0.01 the blocks are nearly identities and a parity check would barely see them."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        near_zero = p.numel() == 1 or float(p.detach().float().std()) < 1e-3
        if p.dim() <= 1 or near_zero:
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def build_pair(classes, enc: EncoderConfig, cfg: ReconConfig, image_size: int, seed: int = 0):
    """Our ``ReconstructionModel`` (seeded init + :func:`spread_weights`) and an :class:`OfficialRecon` holding the same
    weights (loaded strictly from ``vggt_state_dict()``), both in eval mode."""
    from recon.model import ReconstructionModel

    torch.manual_seed(seed)
    ours = ReconstructionModel(enc, cfg).eval()
    spread_weights(ours, seed + 1)
    official = OfficialRecon(classes, official_kwargs(enc, cfg, image_size)).eval()
    official.load_state_dict(branch_layout(ours.vggt_state_dict()), strict=True)
    return ours, official


def branch_layout(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """The aggregator and the camera/depth heads of a VGGT-layout state dict (VGGT's point/track heads are absent)."""
    keep = ("aggregator.", "camera_head.", "depth_head.")
    other = sorted(k for k in sd if not k.startswith(keep))
    if other:
        raise ValueError(f"vggt_state_dict has keys outside {keep}: {other[:5]}")
    return dict(sd)


def max_rel_errors(ours: dict, official: dict) -> dict[str, float]:
    """``max|ours − official| / max|official|`` per compared output (official depth drops its trailing channel)."""
    out = {}
    for key in COMPARED + ((TOKENS,) if TOKENS in ours else ()):
        a, b = ours[key].float(), official[key].float()
        if key == "depth" and b.dim() == a.dim() + 1:
            b = b[..., 0]
        if a.shape != b.shape:
            raise ValueError(f"{key}: ours {tuple(a.shape)} vs official {tuple(b.shape)}")
        out[key] = float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
    return out
