"""Standalone reconstruction model: shared encoder → aggregator → camera head + DPT depth head.

This is the VGGT-equivalent branch without the Cross-Task Adapter; ``vidllm`` reuses the same
modules with the CTA between :meth:`ReconstructionModel.encode` and :meth:`ReconstructionModel.decode`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recon.aggregator import Aggregator
from recon.config import EncoderConfig, ReconConfig
from recon.encoder import EncoderOutput, SharedEncoder
from recon.geometry import pose_encoding_to_extri_intri
from recon.heads.camera_head import CameraHead
from recon.heads.dpt import DPTHead
from recon.vggt_keys import to_vggt_state_dict


class ReconstructionModel(nn.Module):
    """Images ``[B, S, 3, H, W]`` in [0, 1] → poses, depth and confidence (VGGT outputs)."""

    def __init__(self, encoder_cfg: EncoderConfig, cfg: ReconConfig) -> None:
        super().__init__()
        self.encoder_cfg = encoder_cfg
        self.cfg = cfg
        dim = encoder_cfg.hidden_size
        depth = cfg.aggregator.depth
        bad = [i for i in cfg.depth_head.intermediate_layers if not 0 <= i < depth]
        if bad:
            raise ValueError(
                f"recon.depth_head.intermediate_layers {bad} out of range for recon.aggregator.depth = {depth}"
            )
        self.encoder = SharedEncoder(encoder_cfg)
        self.aggregator = Aggregator(
            dim, cfg.aggregator, return_layers=[depth - 1, *cfg.depth_head.intermediate_layers]
        )
        ch = cfg.camera_head
        self.camera_head = CameraHead(
            2 * dim, ch.trunk_depth, ch.num_heads, ch.mlp_ratio, ch.iterations, ch.relative_pose, ch.fov_activation
        )
        dh = cfg.depth_head
        self.depth_head = DPTHead(2 * dim, dh.intermediate_layers, dh.features, dh.out_channels, dh.frames_chunk_size)

    @property
    def patch_size(self) -> int:
        return self.encoder_cfg.patch_size

    def encode(self, images: Tensor) -> EncoderOutput:
        """``[B, S, 3, H, W]`` → encoder output (patch tokens ``[B·S, P, C]``)."""
        return self.encoder(images)

    def decode(self, patch_tokens: Tensor, image_hw: tuple[int, int]) -> dict[str, Tensor | list[Tensor]]:
        """Patch tokens ``[B, S, P, C]`` (possibly CTA-refined) → prediction dict (see :meth:`forward`)."""
        grid = (image_hw[0] // self.patch_size, image_hw[1] // self.patch_size)
        layers, start = self.aggregator(patch_tokens, grid)
        device_type = patch_tokens.device.type
        if torch.is_autocast_enabled(device_type):  # heads run in fp32 under mixed precision, as VGGT
            layers = {k: v.float() for k, v in layers.items()}
            with torch.autocast(device_type, enabled=False):
                return self._heads(layers, start, image_hw)
        return self._heads(layers, start, image_hw)

    def _heads(
        self, layers: dict[int, Tensor], start: int, image_hw: tuple[int, int]
    ) -> dict[str, Tensor | list[Tensor]]:
        last = layers[self.cfg.aggregator.depth - 1]
        extra: dict[str, Tensor] = {}
        offset = None
        if self.camera_head.relative_pose is not None:  # recon.camera_head.relative_pose (off = VGGT)
            grid = (image_hw[0] // self.patch_size, image_hw[1] // self.patch_size)
            offset, extra["relative_pose_enc"] = self.camera_head.relative_pose(last[:, :, start:], grid)
        pose_list = self.camera_head(last, offset=offset)
        depth, conf = self.depth_head(layers, image_hw, start, self.patch_size)
        extrinsic, intrinsic = pose_encoding_to_extri_intri(pose_list[-1], image_hw)
        return {
            **extra,
            "pose_enc": pose_list[-1],
            "pose_enc_list": pose_list,
            "depth": depth,
            "depth_conf": conf,
            "extrinsic": extrinsic,
            "intrinsic": intrinsic,
            # last aggregator layer, patch tokens only [B, S, P, 2C]: the geometry tokens of the fusion baselines
            "geometry_tokens": layers[self.cfg.aggregator.depth - 1][:, :, start:],
        }

    def forward(self, images: Tensor) -> dict[str, Tensor | list[Tensor]]:
        """images ``[B, S, 3, H, W]`` (or ``[S, 3, H, W]``) in [0, 1] → dict with

        ``pose_enc [B,S,9]``, ``pose_enc_list`` (one per refinement iteration), ``depth [B,S,H,W]``,
        ``depth_conf [B,S,H,W]``, ``extrinsic [B,S,3,4]`` (world→camera), ``intrinsic [B,S,3,3]``, and with
        ``recon.camera_head.relative_pose`` on ``relative_pose_enc [B,S,7]`` (the module's own ``[t, quat]``).
        """
        if images.dim() == 4:
            images = images[None]
        if images.dim() != 5 or images.shape[2] != 3:
            raise ValueError(f"ReconstructionModel: images must be [B,S,3,H,W], got {tuple(images.shape)}")
        b, s = images.shape[:2]
        enc = self.encode(images)
        tokens = enc.patch_tokens.reshape(b, s, *enc.patch_tokens.shape[1:])
        return self.decode(tokens, tuple(images.shape[-2:]))

    def vggt_state_dict(self) -> dict[str, Tensor]:
        """This branch's weights in the official VGGT key layout (see :mod:`recon.vggt_loader`; conversion in :mod:`recon.vggt_keys`)."""
        return to_vggt_state_dict(self)
