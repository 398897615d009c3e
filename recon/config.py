"""Typed configuration of the shared encoder and the reconstruction branch.

Defaults are the paper scale (VGGT-1B geometry backbone on DINOv2-L). Each field's docstring
is its CLI help. ``vidllm.config.VidLLMConfig`` composes these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from recon.choices import check_choice

FovActivation = Literal["relu", "softplus"]
"""Output activations of the camera head's field of view (recon.camera_head.fov_activation)."""
EncoderKind = Literal["dinov2", "conv"]
"""Shared encoder kinds (encoder.kind)."""
BinNormalization = Literal["log_binomial", "softmax"]
"""Bin normalisations of the metric depth model (metric_depth.normalization)."""
FOV_ACTIVATIONS = get_args(FovActivation)
ENCODER_KINDS = get_args(EncoderKind)
NORMALIZATIONS = get_args(BinNormalization)


def _check_positive(owner: str, **values) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{owner}.{name} must be > 0, got {value!r}")


@dataclass
class EncoderConfig:
    """The shared image encoder (DINOv2 with registers, or a plain conv patch embed)."""

    kind: EncoderKind = "dinov2"
    """Encoder kind: 'dinov2' (transformers DINOv2 ViT) or 'conv' (a single Conv2d patch embed, VGGT's small option)."""
    pretrained_path: str | None = None
    """Local HF-format DINOv2 directory to load; None builds the encoder from the sizes below."""
    hidden_size: int = 1024
    """Token width C of the encoder output (DINOv2-L: 1024)."""
    num_layers: int = 24
    """Number of ViT blocks (DINOv2-L: 24)."""
    num_heads: int = 16
    """Attention heads per ViT block."""
    mlp_ratio: float = 4.0
    """MLP hidden width as a multiple of hidden_size."""
    patch_size: int = 14
    """Patch size in pixels; image sides must be multiples of it."""
    num_register_tokens: int = 4
    """DINOv2 register tokens (dropped from the output)."""
    pretrain_image_size: int = 518
    """Image size the position embedding was trained at (grid = size / patch_size, interpolated for others)."""
    layerscale_init: float = 1.0
    """Initial LayerScale value of freshly built encoders."""
    layer_norm_eps: float = 1e-6
    """Epsilon of the encoder LayerNorms."""
    intermediate_layers: list[int] = field(default_factory=lambda: [4, 11, 17, 23])
    """0-based block indices whose outputs feed the metric-depth decoder."""
    gradient_checkpointing: bool = False
    """Recompute encoder activations in backward to save memory."""

    def __post_init__(self) -> None:
        check_choice("encoder.kind", self.kind, EncoderKind)
        _check_positive(
            "encoder",
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            patch_size=self.patch_size,
        )
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"encoder.hidden_size ({self.hidden_size}) must be divisible by encoder.num_heads ({self.num_heads})"
            )
        bad = [i for i in self.intermediate_layers if not 0 <= i < self.num_layers]
        if bad:
            raise ValueError(
                f"encoder.intermediate_layers {bad} out of range for encoder.num_layers = {self.num_layers}"
            )


@dataclass
class AggregatorConfig:
    """The alternating frame/global attention backbone (VGGT aggregator)."""

    depth: int = 24
    """Number of frame blocks (and of global blocks)."""
    num_heads: int = 16
    """Attention heads per block."""
    mlp_ratio: float = 4.0
    """MLP hidden width as a multiple of the token width."""
    num_register_tokens: int = 4
    """Register tokens per frame (after the camera token)."""
    qk_norm: bool = True
    """LayerNorm over head_dim on queries and keys."""
    rope_freq: float = 100.0
    """Base frequency of the 2D rotary embedding (0 disables RoPE)."""
    layerscale_init: float = 0.01
    """Initial LayerScale gamma."""
    gradient_checkpointing: bool = False
    """Recompute block activations in backward to save memory."""
    global_merge_ratio: float = 0.0
    """Training-free token merging in the global blocks (long videos): the fraction of the patch tokens of frames >= 1
    averaged into their most similar kept patch token before attention (and given its output back after); frame 0 and
    every camera/register token are kept. In [0, 1); 0 = exact global attention (the trained model)."""
    global_merge_start: int = 0
    """First global block (0-based) that merges tokens when global_merge_ratio > 0; earlier blocks attend exactly."""
    global_merge_proportional: bool = True
    """Proportional attention with merging: log(tokens merged into a key) is added to its attention logits, so a merged
    key weighs as the tokens it stands for (ToMe); False = plain attention over the merged keys (FastVGGT)."""

    def __post_init__(self) -> None:
        _check_positive("recon.aggregator", depth=self.depth, num_heads=self.num_heads, mlp_ratio=self.mlp_ratio)
        if self.rope_freq < 0 or self.num_register_tokens < 0:
            raise ValueError(
                f"recon.aggregator.rope_freq ({self.rope_freq}) and recon.aggregator.num_register_tokens ({self.num_register_tokens}) must be >= 0"
            )
        if not 0.0 <= self.global_merge_ratio < 1.0:
            raise ValueError(
                f"recon.aggregator.global_merge_ratio must be in [0, 1) (0 = no merging), got {self.global_merge_ratio!r}"
            )
        if not 0 <= self.global_merge_start < self.depth:
            raise ValueError(
                f"recon.aggregator.global_merge_start must be in [0, recon.aggregator.depth = {self.depth}), "
                f"got {self.global_merge_start!r}"
            )


@dataclass
class RelativePoseConfig:
    """Patch-grid relative-pose module of the camera head (:mod:`recon.heads.relative_pose`): a tiny-scale aid, off = VGGT."""

    enabled: bool = False
    """Build the module: frame k's and frame 0's pooled patch grids (last aggregator layer) → MLP → a zero-initialised
    offset of frame k's camera token and an own relative pose (trained by recon.loss.relative_pose_weight). Off at paper
    scale; its weights are saved as camera_head.relative_pose.* in the VGGT-layout file."""
    channels: int = 8
    """Channels each patch token is reduced to before the grids are flattened."""
    grid: int = 8
    """Side of the pooled patch grid (adaptive average pooling; the identity for an 8×8 grid, i.e. 112 px at patch 14)."""
    hidden: int = 256
    """Hidden width of the MLP over the two concatenated grids."""
    correlation: bool = False
    """Also feed the MLP the displacement-correlation profile of the two grids ((2·grid − 1)² values: how well frame k's
    grid matches frame 0's shifted by each displacement)."""
    center: bool = False
    """Subtract the mean over the clip's frames at each grid position before comparing (removes what every frame shares,
    e.g. the position embedding that dominates small, young models' tokens)."""

    def __post_init__(self) -> None:
        _check_positive("recon.camera_head.relative_pose", channels=self.channels, grid=self.grid, hidden=self.hidden)


@dataclass
class CameraHeadConfig:
    """Camera head: trunk + iterative adaLN refinement → 9-D pose encoding."""

    trunk_depth: int = 4
    """Transformer blocks in the trunk."""
    num_heads: int = 16
    """Attention heads of the trunk blocks."""
    mlp_ratio: float = 4.0
    """MLP hidden width multiple of the trunk blocks."""
    iterations: int = 4
    """Refinement iterations (one pose encoding each)."""
    relative_pose: RelativePoseConfig = field(default_factory=RelativePoseConfig)
    """Optional patch-grid relative-pose module feeding the camera token (off by default)."""
    fov_activation: FovActivation = "relu"
    """Output activation of the field of view: 'relu' (VGGT; needed for its checkpoints) or 'softplus' (tiny models
    trained from scratch: a ReLU FoV that drops below zero gets no gradient and stays at 0, i.e. fy at the clamp)."""

    def __post_init__(self) -> None:
        _check_positive(
            "recon.camera_head", trunk_depth=self.trunk_depth, num_heads=self.num_heads, iterations=self.iterations
        )
        check_choice("recon.camera_head.fov_activation", self.fov_activation, FovActivation)


@dataclass
class DepthHeadConfig:
    """DPT head predicting relative depth and confidence."""

    intermediate_layers: list[int] = field(default_factory=lambda: [4, 11, 17, 23])
    """Aggregator layer indices fed to the DPT (4 of them)."""
    features: int = 256
    """Channels of the fusion path."""
    out_channels: list[int] = field(default_factory=lambda: [256, 512, 1024, 1024])
    """Channels of the four 1×1 projections."""
    frames_chunk_size: int = 8
    """Frames decoded at once (memory); 0 decodes all frames together."""

    def __post_init__(self) -> None:
        if len(self.intermediate_layers) != 4 or len(self.out_channels) != 4:
            raise ValueError("recon.depth_head.intermediate_layers and out_channels must each have 4 entries")
        if self.features <= 0 or self.features % 8:
            raise ValueError(
                f"recon.depth_head.features must be a positive multiple of 8 (UV embedding of features // 2), got {self.features}"
            )
        if self.frames_chunk_size < 0:
            raise ValueError(f"recon.depth_head.frames_chunk_size must be >= 0, got {self.frames_chunk_size}")


@dataclass
class ReconLossConfig:
    """Weights of the reconstruction losses (VGGT-style)."""

    camera_weight: float = 1.0
    """Weight of the camera loss."""
    camera_decay: float = 0.6
    """Weight decay over refinement stages: stage i of n weighs decay^(n-1-i)."""
    fov_weight: float = 0.5
    """Weight of the FoV term inside the camera loss."""
    depth_weight: float = 1.0
    """Weight of the depth loss."""
    conf_alpha: float = 0.2
    """Alpha of the confidence regulariser (gamma·r·c − alpha·log c)."""
    gradient_weight: float = 1.0
    """Weight of the multi-scale gradient term of the depth loss."""
    point_weight: float = 0.0
    """Weight of the optional point-map loss (0 disables it)."""
    conf_gamma: float = 1.0
    """Gamma of the confidence-weighted residual (gamma·r·c − alpha·log c)."""
    gradient_scales: int = 3
    """Scales of the multi-scale gradient term (scale s subsamples pixels with stride 2^s)."""
    residual_clamp: float = 100.0
    """Per-element residuals are clamped at this value before averaging (VGGT: 100)."""
    relative_pose_weight: float = 0.0
    """Weight of the auxiliary L1 loss on the relative-pose module's own [t, quat] prediction (0 disables it; needs
    recon.camera_head.relative_pose.enabled)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.camera_decay <= 1.0:
            raise ValueError(f"recon.loss.camera_decay must be in (0, 1], got {self.camera_decay!r}")
        _check_positive(
            "recon.loss",
            gradient_scales=self.gradient_scales,
            residual_clamp=self.residual_clamp,
            conf_gamma=self.conf_gamma,
        )
        for name in (
            "camera_weight",
            "fov_weight",
            "depth_weight",
            "conf_alpha",
            "gradient_weight",
            "point_weight",
            "relative_pose_weight",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"recon.loss.{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass
class ReconConfig:
    """The reconstruction branch: aggregator, camera and DPT heads, losses."""

    aggregator: AggregatorConfig = field(default_factory=AggregatorConfig)
    """Global/frame attention backbone."""
    camera_head: CameraHeadConfig = field(default_factory=CameraHeadConfig)
    """Camera head."""
    depth_head: DepthHeadConfig = field(default_factory=DepthHeadConfig)
    """DPT depth head."""
    loss: ReconLossConfig = field(default_factory=ReconLossConfig)
    """Loss weights."""
    vggt_checkpoint: str | None = None
    """Official VGGT model.pt (or .safetensors) to initialise encoder + reconstruction branch from."""


@dataclass
class AlignmentConfig:
    """Real-scale alignment between relative (DPT) and metric depth."""

    enabled: bool = True
    """Apply the scene scale to depth and translations (False = the 'metric depth w/o alignment' ablation)."""
    num_frames: int = 16
    """Frames sampled per scene for per-image scales (median taken)."""
    seed: int = 0
    """Seed of the deterministic frame sampling."""
    min_valid_pixels: int = 16
    """Frames with fewer valid pixels are skipped as degenerate."""

    def __post_init__(self) -> None:
        _check_positive("metric_depth.alignment", num_frames=self.num_frames, min_valid_pixels=self.min_valid_pixels)


@dataclass
class MetricDepthConfig:
    """Metric Depth Model: DPT-style decoder → per-pixel bins with refined centres (paper §3.2)."""

    enabled: bool = True
    """Build the metric depth model (False = the 'w/o metric depth' ablation)."""
    n_bins: int = 64
    """Number of depth bins N."""
    min_depth: float = 1e-3
    """Smallest seed bin centre in metres."""
    max_depth: float = 10.0
    """Largest seed bin centre in metres."""
    normalization: BinNormalization = "log_binomial"
    """Ordinal-aware bin normalisation: 'log_binomial' (ZoeDepth) or 'softmax'."""
    features: int = 256
    """Channels of the decoder fusion path."""
    out_channels: list[int] = field(default_factory=lambda: [256, 512, 1024, 1024])
    """Channels of the four 1×1 projections of the encoder features."""
    frames_chunk_size: int = 8
    """Frames decoded at once (memory); 0 decodes all frames together."""
    prediction_stride: int = 1
    """Predict the bins at (H/s, W/s) and bilinearly upsample the metric depth to H×W (a tiny-scale speed option: the per-pixel bin head is most of the metric model's cost); 1 = full resolution (the paper). H and W must be multiples of s."""
    loss_alpha: float = 5.0
    """Alpha of L_MD (Eq. 9): robustness to large log-depth residuals."""
    loss_eps: float = 1e-6
    """Epsilon inside the logs of L_MD."""
    loss_weight: float = 1.0
    """Weight of L_MD in the joint loss."""
    pos_embed: bool = True
    """Add the sinusoidal UV position embedding inside the decoder (as the DPT head)."""
    bin_hidden: int = 64
    """Hidden channels of the bin head's per-pixel MLPs (probabilities and centre offsets)."""
    center_shift_bound: float = 0.45
    """|Δc| of a bin centre is below this fraction of the gap to its neighbour seed centre (< 0.5 keeps centres ordered)."""
    min_temperature: float = 0.0212
    """Smallest temperature of the log-binomial normalisation (ZoeDepth default)."""
    max_temperature: float = 50.0
    """Largest temperature of the log-binomial normalisation (ZoeDepth default)."""
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    """Real-scale alignment."""

    def __post_init__(self) -> None:
        check_choice("metric_depth.normalization", self.normalization, BinNormalization)
        _check_positive(
            "metric_depth",
            n_bins=self.n_bins,
            min_depth=self.min_depth,
            bin_hidden=self.bin_hidden,
            min_temperature=self.min_temperature,
        )
        if self.n_bins < 2:
            raise ValueError(f"metric_depth.n_bins must be >= 2, got {self.n_bins}")
        if not 0.0 < self.center_shift_bound < 0.5:
            raise ValueError(
                f"metric_depth.center_shift_bound must be in (0, 0.5) to keep centres ordered, got {self.center_shift_bound!r}"
            )
        if self.max_temperature <= self.min_temperature:
            raise ValueError(
                f"metric_depth.max_temperature ({self.max_temperature}) must exceed metric_depth.min_temperature ({self.min_temperature})"
            )
        if self.loss_alpha < 0 or self.loss_eps < 0:
            raise ValueError(
                f"metric_depth.loss_alpha and metric_depth.loss_eps must be >= 0, got {self.loss_alpha!r}, {self.loss_eps!r}"
            )
        if len(self.out_channels) != 4:
            raise ValueError(f"metric_depth.out_channels must have 4 entries, got {self.out_channels!r}")
        if self.features < 2 or (self.pos_embed and (self.features // 2) % 4):
            raise ValueError(
                f"metric_depth.features // 2 must be a positive multiple of 4 (UV position embedding), got features = {self.features}"
            )
        if self.frames_chunk_size < 0:
            raise ValueError(f"metric_depth.frames_chunk_size must be >= 0, got {self.frames_chunk_size}")
        if self.prediction_stride < 1:
            raise ValueError(
                f"metric_depth.prediction_stride must be >= 1 (1 = full resolution), got {self.prediction_stride}"
            )
        if self.max_depth <= self.min_depth:
            raise ValueError(
                f"metric_depth.max_depth ({self.max_depth}) must exceed metric_depth.min_depth ({self.min_depth})"
            )
