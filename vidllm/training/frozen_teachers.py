"""The frozen stage-1 teachers (paper §3.4).

* **Geometry teacher** — a DINOv2 ViT: from a VGGT checkpoint (``model.pt`` / ``.safetensors``:
  its ``aggregator.patch_embed.*`` weights, read through the VGGT loader's key mapping) or from a
  local HF-format DINOv2 directory. Output: patch tokens ``[N, P, C_g]`` on the student's grid
  (same patch size and input images).
* **Semantic teacher** — a transformers ``CLIPVisionModel`` from a local directory (LLaVA-3D
  uses clip-vit-large-patch14-336). Output: the patch tokens of its penultimate layer (LLaVA's
  ``select_layer = -2``, class token dropped) ``[N, P_t, C_l]`` on the teacher's own grid,
  computed on the frames resized so the shorter side is the teacher's ``image_size`` (sides
  rounded to its patch size; position embeddings interpolated) and normalised with CLIP's
  mean/std.

Both are returned frozen: ``requires_grad_(False)`` and ``eval()``; :class:`FrozenTeacher`
keeps them in eval mode even when the parent module is put in train mode, and runs them under
``torch.no_grad()``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recon.config import EncoderConfig
from recon.encoder import SharedEncoder
from vidllm.errors import CheckpointError
from vidllm.io import load_state_dict

SEMANTIC_FEATURE_LAYER = -2
"""Hidden state of the CLIP vision tower whose patch tokens are the semantic teacher's features (penultimate layer)."""

__all__ = [
    "SEMANTIC_FEATURE_LAYER",
    "FrozenTeacher",
    "GeometryTeacher",
    "SemanticTeacher",
    "load_geometry_teacher",
    "load_semantic_teacher",
]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_input_size(height: int, width: int, image_size: int, patch: int) -> tuple[int, int]:
    """CLIP input size: shorter side → ``image_size``, both sides multiples of ``patch``."""
    scale = image_size / min(height, width)
    return max(patch, round(height * scale / patch) * patch), max(patch, round(width * scale / patch) * patch)


def clip_pixel_values(images: Tensor, image_size: int, patch: int) -> Tensor:
    """Frames ``[N, 3, H, W]`` in [0, 1] → CLIP-normalised pixels at :func:`clip_input_size` (bicubic, antialiased)."""
    size = clip_input_size(*images.shape[-2:], image_size, patch)
    x = F.interpolate(images.float(), size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class FrozenTeacher(nn.Module):
    """Base class: parameters frozen, always in eval mode, forward without gradient."""

    def freeze(self) -> FrozenTeacher:
        self.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> FrozenTeacher:  # noqa: ARG002 - teachers never train
        return super().train(False)


class GeometryTeacher(FrozenTeacher):
    """Frozen DINOv2: images ``[B, S, 3, H, W]`` in [0, 1] → patch tokens ``[B·S, P, C_g]``."""

    def __init__(self, encoder: SharedEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.freeze()

    @property
    def hidden_size(self) -> int:
        return self.encoder.hidden_size

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        return self.encoder(images, layers=[]).patch_tokens


class SemanticTeacher(FrozenTeacher):
    """Frozen CLIP vision tower: images ``[B, S, 3, H, W]`` in [0, 1] → (tokens ``[B·S, P_t, C_l]``, grid ``(h_t, w_t)``)."""

    def __init__(self, model: nn.Module, layer: int = -2) -> None:
        super().__init__()
        self.model = model
        self.layer = layer
        cfg = model.config
        self.image_size = int(cfg.image_size)
        self.patch_size = int(cfg.patch_size)
        self.freeze()

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """Teacher input size: shorter side → ``image_size``, both sides multiples of the patch size."""
        return clip_input_size(height, width, self.image_size, self.patch_size)

    @torch.no_grad()
    def forward(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        if images.dim() == 5:
            images = images.flatten(0, 1)
        size = self.input_size(*images.shape[-2:])
        x = clip_pixel_values(images, self.image_size, self.patch_size)
        out = self.model(
            pixel_values=x.to(next(self.model.parameters()).dtype),
            output_hidden_states=True,
            interpolate_pos_encoding=True,
        )
        tokens = out.hidden_states[self.layer][:, 1:]
        return tokens, (size[0] // self.patch_size, size[1] // self.patch_size)


def load_geometry_teacher(
    path: str | Path, encoder_cfg: EncoderConfig | None = None, **vggt_overrides
) -> GeometryTeacher:
    """Geometry teacher from a VGGT checkpoint file or a local HF DINOv2 directory.

    Args:
        path: VGGT ``model.pt`` / ``.safetensors`` (its ``aggregator.patch_embed``), or a directory
            with a DINOv2 ``config.json`` + weights.
        encoder_cfg: for a directory, the encoder config to load it with (``pretrained_path`` is set
            to ``path``); sizes are checked against the directory's config.
        vggt_overrides: sizes a VGGT file does not reveal (``encoder_num_heads``; see
            :data:`recon.vggt_loader.VGGT_DEFAULTS`); read from a ``meta.json`` beside the file
            (key ``vggt_overrides``) when present, explicit arguments winning.
    """
    from recon.vggt_loader import infer_configs, vggt_to_branch

    path = Path(path)
    if path.is_dir():
        base = encoder_cfg or EncoderConfig()
        cfg = EncoderConfig(**{**vars(base), "pretrained_path": str(path)})
        return GeometryTeacher(SharedEncoder(cfg))
    sd = load_state_dict(path)
    meta = path.parent / "meta.json"
    if meta.is_file():  # written by `vidllm teachers`: the sizes the weights do not reveal
        import json

        vggt_overrides = {**json.loads(meta.read_text()).get("vggt_overrides", {}), **vggt_overrides}
        vggt_overrides = {k: v for k, v in vggt_overrides.items() if k == "encoder_num_heads"}
    if not any(k.startswith("aggregator.patch_embed.") for k in sd):
        raise CheckpointError(
            f"{path}: no 'aggregator.patch_embed.*' weights — not a VGGT checkpoint, so it cannot give a geometry teacher"
        )
    enc_cfg, _ = infer_configs(
        {k: v for k, v in sd.items() if not k.startswith(("camera_head.", "depth_head."))} | _stub_keys(sd),
        **vggt_overrides,
    )
    encoder = SharedEncoder(enc_cfg)
    holder = nn.Module()
    holder.encoder = encoder
    converted, _, _ = vggt_to_branch({k: v for k, v in sd.items() if k.startswith("aggregator.patch_embed.")}, holder)
    enc_sd = {k[len("encoder.") :]: v for k, v in converted.items() if k.startswith("encoder.")}
    missing, unexpected = encoder.load_state_dict(enc_sd, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: geometry teacher weights do not match: missing {missing[:8]}, unexpected {unexpected[:8]}"
        )
    return GeometryTeacher(encoder)


def _stub_keys(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """Head keys whose shapes ``infer_configs`` reads, when a checkpoint holds only the aggregator."""
    if "camera_head.trunk.0.mlp.fc1.weight" in sd:
        return {k: v for k, v in sd.items() if k.startswith(("camera_head.", "depth_head."))}
    dim = sd["aggregator.camera_token"].shape[-1]
    stub = {
        "camera_head.trunk.0.mlp.fc1.weight": torch.empty(8 * dim, 0),
        "depth_head.scratch.layer1_rn.weight": torch.empty(1, 0),
    }
    stub.update({f"depth_head.projects.{i}.weight": torch.empty(1, 0) for i in range(4)})
    return stub


def load_semantic_teacher(path: str | Path, layer: int = SEMANTIC_FEATURE_LAYER) -> SemanticTeacher:
    """Semantic teacher from a local directory holding a transformers CLIP (vision) model."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    path = Path(path)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"semantic teacher: {path} is not a local HF-format directory (no config.json)")
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a full CLIPModel directory has text-tower keys the vision tower skips
    try:
        cfg = CLIPVisionConfig.from_pretrained(path, local_files_only=True)
        model = CLIPVisionModel.from_pretrained(path, config=cfg, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"semantic teacher: cannot load a CLIP vision model from {path}: {str(err).splitlines()[0]}"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    return SemanticTeacher(model, layer)
