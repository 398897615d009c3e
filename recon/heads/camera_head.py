"""VGGT camera head: trunk over the S camera tokens + iterative adaLN refinement → 9-D pose encodings.

Per iteration: ``cond = embed_pose(prev)`` (``prev`` = learned ``empty_pose_tokens`` first, then the
detached accumulated pre-activation pose); ``shift, scale, gate = poseLN_modulation(cond)``;
``x = gate·(LN(tokens)·(1+scale) + shift) + tokens``; ``x = trunk(x)``;
``pose += pose_branch(trunk_norm(x))``; output ``[T (linear), quat (linear), FoV (ReLU)]``.

Optional (``fov_activation: softplus``, default ``relu`` = VGGT): the FoV goes through softplus, which is
positive with a gradient everywhere; a ReLU FoV output that falls below zero in training never recovers
(its gradient is 0), which a tiny model trained from scratch does (fy → the clamp, every point on one row).

Optional (``relative_pose``, off = VGGT): a :class:`recon.heads.relative_pose.RelativePoseModule`
whose zero-initialised offset ``δ`` is added to the normalised camera token, ``tokens = LN(cam) + δ``,
before the refinement; the caller computes ``δ`` from the patch tokens and passes it as ``offset``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recon.config import FOV_ACTIVATIONS, RelativePoseConfig
from recon.heads.relative_pose import RelativePoseModule
from recon.layers.block import Block, Mlp

POSE_DIM = 9


def activate_pose(pose: Tensor, fov_activation: str = "relu") -> Tensor:
    """``[..., 9]`` pre-activation → translation and quaternion unchanged, FoV through ReLU (VGGT) or softplus."""
    if fov_activation not in FOV_ACTIVATIONS:
        raise ValueError(
            f"recon.camera_head.fov_activation = {fov_activation!r}; expected one of {list(FOV_ACTIVATIONS)}"
        )
    fov = F.relu(pose[..., 7:]) if fov_activation == "relu" else F.softplus(pose[..., 7:])
    return torch.cat([pose[..., :7], fov], dim=-1)


class CameraHead(nn.Module):
    """``[B, S, dim]`` camera tokens (from the last aggregator layer) → list of ``[B, S, 9]`` poses.

    Args:
        dim: aggregator output width (2C).
        trunk_depth / num_heads / mlp_ratio: trunk blocks (no qk-norm, no RoPE).
        iterations: refinement iterations (one output each).
        relative_pose: settings of the optional patch-grid relative-pose module (None or disabled = none, as VGGT).
        fov_activation: 'relu' (VGGT) or 'softplus' (never stuck at zero).
    """

    def __init__(
        self,
        dim: int,
        trunk_depth: int = 4,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        iterations: int = 4,
        relative_pose: RelativePoseConfig | None = None,
        fov_activation: str = "relu",
    ) -> None:
        super().__init__()
        if fov_activation not in FOV_ACTIVATIONS:
            raise ValueError(
                f"recon.camera_head.fov_activation = {fov_activation!r}; expected one of {list(FOV_ACTIVATIONS)}"
            )
        self.fov_activation = fov_activation
        self.iterations = iterations
        self.trunk = nn.Sequential(*[Block(dim, num_heads, mlp_ratio) for _ in range(trunk_depth)])
        self.token_norm = nn.LayerNorm(dim)
        self.trunk_norm = nn.LayerNorm(dim)
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, POSE_DIM))
        self.embed_pose = nn.Linear(POSE_DIM, dim)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 3 * dim))
        self.adaln_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(dim, dim // 2, POSE_DIM)
        rp = relative_pose
        self.relative_pose = (
            RelativePoseModule(dim, rp.channels, rp.grid, rp.hidden, rp.correlation, rp.center)
            if rp is not None and rp.enabled
            else None
        )

    def forward(self, last_layer: Tensor, iterations: int | None = None, offset: Tensor | None = None) -> list[Tensor]:
        """last_layer ``[B, S, N, dim]`` (camera token at index 0) → ``iterations`` × ``[B, S, 9]``.

        ``offset [B, S, dim]`` (the relative-pose module's ``δ``) is added to the normalised camera tokens."""
        tokens = self.token_norm(last_layer[:, :, 0])
        if offset is not None:
            tokens = tokens + offset.to(tokens.dtype)
        b, s, _ = tokens.shape
        normed = self.adaln_norm(tokens)
        pose = None
        outputs = []
        for _ in range(iterations or self.iterations):
            prev = self.empty_pose_tokens.expand(b, s, -1) if pose is None else pose.detach()
            shift, scale, gate = self.poseLN_modulation(self.embed_pose(prev)).chunk(3, dim=-1)
            x = gate * (normed * (1 + scale) + shift) + tokens
            for block in self.trunk:
                x = block(x)
            delta = self.pose_branch(self.trunk_norm(x))
            pose = delta if pose is None else pose + delta
            outputs.append(activate_pose(pose, self.fov_activation))
        return outputs
