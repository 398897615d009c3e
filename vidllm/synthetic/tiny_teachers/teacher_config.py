"""Typed settings of the stage-1 teacher training (``vidllm teachers``).

The model sizes of the geometry teacher come from a :class:`~vidllm.config.VidLLMConfig` (its
``encoder`` and ``recon`` sections, so the teacher matches the student and can initialise it
through the VGGT loader); everything else — steps, time budgets, learning rates, clip shapes and
the CLIP-style semantic model's sizes — lives here. Each field's docstring is its help text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TeacherTrainConfig:
    """How the geometry (VGGT-style) and semantic (CLIP-style) teachers are trained."""

    seed: int = 0
    """Seed of the weight initialisation, the clip/frame sampling and the data order."""
    geometry_steps: int = 600
    """Most optimiser steps of the geometry teacher (training also stops at geometry_minutes)."""
    semantic_steps: int = 600
    """Most optimiser steps of the semantic teacher (training also stops at semantic_minutes)."""
    geometry_minutes: float = 2.5
    """Wall-clock budget of the geometry teacher's training loop in minutes (0 = no time limit)."""
    semantic_minutes: float = 2.0
    """Wall-clock budget of the semantic teacher's training loop in minutes (0 = no time limit)."""
    eval_every: int = 100
    """Evaluate on the held-out scenes every this many steps (and at the end)."""
    threads: int = 0
    """torch intra-op threads while training (0 = leave torch's setting)."""
    # ---- geometry teacher
    geometry_lr: float = 1e-3
    """Peak AdamW learning rate of the geometry teacher."""
    geometry_weight_decay: float = 0.05
    """AdamW weight decay of the geometry teacher."""
    geometry_warmup: int = 20
    """Linear warm-up steps of the geometry teacher (cosine decay to 10% afterwards)."""
    clip_frames: int = 4
    """Frames per training / evaluation clip of the geometry teacher (S)."""
    clip_span: int = 10
    """Consecutive valid frames a clip's frames are drawn from (sorted random subset in training, evenly spaced in evaluation)."""
    geometry_batch: int = 2
    """Clips per geometry-teacher batch (B)."""
    reverse_prob: float = 0.0
    """Probability that a geometry training clip is played reversed (frame order flipped; its poses are then relative to
    its new first frame), so the turn direction cannot be read from frame order (0 = always forwards)."""
    eval_clip_frames: int = 0
    """Frames per held-out evaluation clip of the geometry teacher (0 = clip_frames); clips are scored forwards and reversed."""
    eval_clips_per_scene: int = 2
    """Held-out clips per validation scene in the geometry evaluation."""
    grad_clip: float = 1.0
    """Gradient-norm clipping of both teachers (0 disables)."""
    # ---- semantic teacher
    semantic_lr: float = 1e-3
    """Peak AdamW learning rate of the semantic teacher."""
    semantic_weight_decay: float = 0.05
    """AdamW weight decay of the semantic teacher."""
    semantic_warmup: int = 20
    """Linear warm-up steps of the semantic teacher (cosine decay to 10% afterwards)."""
    semantic_batch: int = 32
    """Frames per contrastive batch."""
    semantic_dense_weight: float = 0.0
    """Weight of the dense patch–name term of the semantic teacher: each patch token of the feature layer (the one
    stage 1 distils), through a linear head, is classified among the names of the batch's objects, its target the
    object it shows (GT depth lifted into the GT boxes). The frame-level CLIP loss alone leaves the patch tokens
    without the object's category (0 = off, plain CLIP)."""
    semantic_dense_min_share: float = 0.5
    """A patch takes part in the dense term when one object covers at least this share of it."""
    min_object_fraction: float = 0.02
    """An object is 'shown' by a frame when its pixels cover at least this fraction of the image."""
    vision_hidden: int = 64
    """Width of the CLIP-style vision tower (the semantic teacher's feature width)."""
    vision_layers: int = 4
    """Transformer layers of the vision tower."""
    vision_heads: int = 4
    """Attention heads of the vision tower."""
    vision_patch: int = 14
    """Patch size of the vision tower."""
    vision_image_size: int = 112
    """Input size of the vision tower (the shorter image side is resized to it)."""
    text_hidden: int = 64
    """Width of the text tower."""
    text_layers: int = 2
    """Transformer layers of the text tower."""
    text_heads: int = 4
    """Attention heads of the text tower."""
    text_max_length: int = 16
    """Most text tokens (position embeddings of the text tower)."""
    projection_dim: int = 64
    """Width of the shared image–text embedding space."""

    def __post_init__(self) -> None:
        for name in (
            "geometry_steps",
            "semantic_steps",
            "eval_every",
            "clip_frames",
            "clip_span",
            "geometry_batch",
            "eval_clips_per_scene",
            "semantic_batch",
            "vision_hidden",
            "vision_layers",
            "vision_heads",
            "vision_patch",
            "vision_image_size",
            "text_hidden",
            "text_layers",
            "text_heads",
            "text_max_length",
            "projection_dim",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"teachers.{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "geometry_minutes",
            "semantic_minutes",
            "geometry_weight_decay",
            "semantic_weight_decay",
            "grad_clip",
            "threads",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"teachers.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("geometry_lr", "semantic_lr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"teachers.{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.reverse_prob <= 1.0:
            raise ValueError(f"teachers.reverse_prob must be in [0, 1], got {self.reverse_prob}")
        if self.eval_clip_frames == 1 or self.eval_clip_frames < 0:
            raise ValueError(
                f"teachers.eval_clip_frames must be 0 (= clip_frames) or >= 2, got {self.eval_clip_frames}"
            )
        if self.clip_frames < 2:
            raise ValueError(
                f"teachers.clip_frames must be >= 2 (camera poses are relative to the first frame), got {self.clip_frames}"
            )
        if self.clip_span < self.clip_frames:
            raise ValueError(
                f"teachers.clip_span ({self.clip_span}) must be >= teachers.clip_frames ({self.clip_frames})"
            )
        if self.semantic_batch < 2:
            raise ValueError(f"teachers.semantic_batch must be >= 2 (contrastive negatives), got {self.semantic_batch}")
        if self.semantic_dense_weight < 0:
            raise ValueError(f"teachers.semantic_dense_weight must be >= 0, got {self.semantic_dense_weight}")
        if not 0 < self.semantic_dense_min_share <= 1:
            raise ValueError(
                f"teachers.semantic_dense_min_share must be in (0, 1], got {self.semantic_dense_min_share}"
            )
        if not 0 <= self.min_object_fraction < 1:
            raise ValueError(f"teachers.min_object_fraction must be in [0, 1), got {self.min_object_fraction}")
        for width, heads, owner in (
            (self.vision_hidden, self.vision_heads, "vision"),
            (self.text_hidden, self.text_heads, "text"),
        ):
            if width % heads:
                raise ValueError(
                    f"teachers.{owner}_hidden ({width}) must be divisible by teachers.{owner}_heads ({heads})"
                )
        if self.vision_image_size % self.vision_patch:
            raise ValueError(
                f"teachers.vision_image_size ({self.vision_image_size}) must be a multiple of teachers.vision_patch ({self.vision_patch})"
            )
