"""Typed configuration of the vision–language branch and the LLM."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from recon.choices import check_choice

PosEmbed = Literal["mlp", "sincos"]
"""3D position embeddings of the patch tokens (vl.pos_embed)."""
DepthSample = Literal["median", "center"]
"""How a patch's depth is read (vl.depth_sample)."""
GroundingMode = Literal["both", "regression", "proposal"]
"""Grounding heads trained and used (vl.grounding.mode)."""
GroundQuery = Literal["state", "attention"]
"""How the prompt joins the <ground> state (vl.grounding.query)."""
FinetuneMode = Literal["lora", "full", "frozen"]
"""How the LLM is trained (llm.finetune)."""
LLMDtype = Literal["float32", "bfloat16", "float16", "auto"]
"""Weight dtype of a loaded LLM (llm.dtype)."""
ReadoutHops = Literal[1, 2]
"""Lookups of the question-conditioned readout (vl.readout.hops)."""
POS_EMBEDS = get_args(PosEmbed)
DEPTH_SAMPLES = get_args(DepthSample)
GROUNDING_MODES = get_args(GroundingMode)
FINETUNE_MODES = get_args(FinetuneMode)
LLM_DTYPES = get_args(LLMDtype)
GROUND_QUERIES = get_args(GroundQuery)


@dataclass
class GroundingConfig:
    """Grounding head on the <ground> hidden state: box regression and proposal scoring."""

    mode: GroundingMode = "both"
    """Which heads to train and use: 'both', 'regression' or 'proposal'."""
    l1_weight: float = 1.0
    """Weight of the box L1 loss."""
    giou_weight: float = 1.0
    """Weight of the 3D GIoU loss."""
    proposal_weight: float = 1.0
    """Weight of the proposal cross-entropy."""
    max_targets: int = 8
    """Boxes regressed per query (Hungarian-matched to the targets)."""
    objectness_weight: float = 1.0
    """Weight of the objectness BCE of the regressed box slots."""
    score_threshold: float = 0.5
    """Regressed slots with objectness probability above this are predicted boxes (the best slot is always returned)."""
    query: GroundQuery = "state"
    """How the prompt joins the <ground> state in the grounding query: 'state' (the mean last-layer state of the
    prompt's words) or 'attention' (learned attention pooling over the words' last-layer states and input embeddings,
    vl/query_pool.py: a direct path for the description when a tiny fresh LM's states do not depend on it)."""

    def __post_init__(self) -> None:
        check_choice("vl.grounding.mode", self.mode, GroundingMode)
        check_choice("vl.grounding.query", self.query, GroundQuery)


@dataclass
class GeoAuxConfig:
    """GeoVR-style auxiliary geometric heads on the LLM hidden states (GeoVR §3.3–3.6).

    Training-time regularisers only (the heads are never run at inference); off by default, in
    which case the branch builds no extra parameters. Targets come from the detached metric
    geometry the branch receives (the reconstruction branch plays GeoVR's 3D teacher); see
    :mod:`vl.geo_aux`. Layer lists are *fractions of the LLM depth* in (0, 1] (GeoVR maps teacher
    layers to LLM layers by depth ratio): ``f`` selects the output of decoder layer
    ``max(1, round(f · L))``; 1.0 is the last layer (after the final norm).
    """

    enabled: bool = False
    """Build the heads and add their losses to the VL loss."""
    camera_weight: float = 1.0
    """Weight of the camera-token pose loss (one camera query token per frame); 0 drops the camera token and head."""
    rotation_weight: float = 1.0
    """Factor of the quaternion L1 term inside the camera loss (GeoVR Eq. 2 λ_q)."""
    fov_weight: float = 0.5
    """Factor of the field-of-view L1 term inside the camera loss (GeoVR Eq. 2 λ_f)."""
    depth_weight: float = 1.0
    """Weight of the geometry ("depth") head loss on the 3D-token hidden states; 0 drops the head."""
    depth_conf_alpha: float = 0.2
    """Confidence regulariser α of the aleatoric geometry loss ``c·‖p̂−p‖ − α·log c`` (GeoVR Eq. 3)."""
    depth_layers: list[float] = field(default_factory=lambda: [1.0])
    """LLM layers (depth fractions) whose 3D-token hidden states, concatenated, feed the geometry head."""
    scale_weight: float = 1.0
    """Weight of the scale-token loss ``|log ŝ − log s|`` (GeoVR Eq. 4); 0 drops the scale token and head."""
    align_weight: float = 0.5
    """Weight of the multi-layer alignment loss ``1 − cos`` to the pooled geometry tokens (GeoVR Eq. 5); 0 drops it."""
    align_layers: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0])
    """LLM layers (depth fractions) aligned to the aggregator's geometry tokens, one projector MLP each."""
    geometry_dim: int = 0
    """Width of the geometry tokens aligned to (0 = 2·C, the aggregator's [frame; global] tokens)."""
    normalize_by_scale: bool = True
    """Divide the translation and point targets by the clip's scene scale s (VGGT normalisation), so the
    camera and geometry heads learn up-to-scale structure and the scale token the metric magnitude."""

    def __post_init__(self) -> None:
        weights = (
            self.camera_weight,
            self.rotation_weight,
            self.fov_weight,
            self.depth_weight,
            self.scale_weight,
            self.align_weight,
        )
        if min(weights) < 0 or self.depth_conf_alpha < 0:
            raise ValueError("vl.geo_aux weights and depth_conf_alpha must be >= 0")
        for name in ("depth_layers", "align_layers"):
            fracs = getattr(self, name)
            if any(not 0.0 < float(f) <= 1.0 for f in fracs):
                raise ValueError(f"vl.geo_aux.{name} = {list(fracs)}: entries are fractions of the LLM depth in (0, 1]")
        if self.depth_weight > 0 and not self.depth_layers:
            raise ValueError("vl.geo_aux.depth_layers must name at least one layer when depth_weight > 0")
        if self.align_weight > 0 and not self.align_layers:
            raise ValueError("vl.geo_aux.align_layers must name at least one layer when align_weight > 0")
        if self.enabled and max(self.camera_weight, self.depth_weight, self.scale_weight, self.align_weight) == 0:
            raise ValueError("vl.geo_aux.enabled needs at least one of camera/depth/scale/align_weight > 0")
        if self.geometry_dim < 0:
            raise ValueError(f"vl.geo_aux.geometry_dim must be >= 0, got {self.geometry_dim}")


@dataclass
class ReadoutConfig:
    """Question-conditioned readout of the 3D tokens that ends the prompt (vl/readout.py). Off by default and at
    paper scale; on in the demo, where a tiny LM trained from scratch does not learn to look up the named object."""

    enabled: bool = False
    """Add the readout tokens (and, with localization_weight > 0, their localisation loss)."""
    num_tokens: int = 2
    """Readout tokens K (one attention head over the 3D tokens each)."""
    localization_weight: float = 1.0
    """Weight of -log(attention mass on the tokens inside the question's annotated objects); 0 turns it off."""
    box_margin: float = 0.1
    """Metres added around each annotated box when deciding which tokens are inside it."""
    score_proposals: bool = True
    """Add lambda * log(readout attention mass inside each proposal) to the grounding proposal logits (lambda learned)."""
    hops: ReadoutHops = 1
    """Lookups in sequence: 2 adds a second attention, conditioned on what the first read and biased towards the
    first one's attention-weighted position ('the chair next to the white chair': find the white object, then its
    neighbour). The localisation loss and the proposal term use the last hop."""

    def __post_init__(self) -> None:
        if self.num_tokens < 1:
            raise ValueError(f"vl.readout.num_tokens must be >= 1, got {self.num_tokens}")
        check_choice("vl.readout.hops", self.hops, ReadoutHops)
        if self.localization_weight < 0 or self.box_margin < 0:
            raise ValueError("vl.readout.localization_weight and vl.readout.box_margin must be >= 0")


@dataclass
class VLConfig:
    """3D patch construction, token budget, projector, grounding and VL loss weights."""

    depth_sample: DepthSample = "median"
    """Depth of a patch: the median of its valid pixels ('median') or its centre pixel ('center')."""
    pos_embed: PosEmbed = "mlp"
    """3D position embedding: 'mlp' (paper Eq. 4) or 'sincos'."""
    voxel_size: float = 0.2
    """Voxel edge (metres, model frame) for pooling 3D patch tokens."""
    max_3d_tokens: int = 2048
    """Cap on 3D tokens per clip (most-populated voxels kept)."""
    min_confidence: float = 0.0
    """Patches whose depth confidence is below this are masked out (0 keeps all valid depth)."""
    projector_layers: int = 2
    """Layers of the MLP projector to the LLM width."""
    lm_weight: float = 1.0
    """Weight of the language-model cross-entropy."""
    grounding: GroundingConfig = field(default_factory=GroundingConfig)
    """Grounding head."""
    geo_aux: GeoAuxConfig = field(default_factory=GeoAuxConfig)
    """GeoVR-style auxiliary geometric heads (baseline; off by default)."""
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)
    """Question-conditioned readout tokens at the end of the prompt (tiny-scale aid; off by default)."""

    def __post_init__(self) -> None:
        if self.readout.enabled and self.geo_aux.enabled:
            raise ValueError(
                "vl.readout.enabled and vl.geo_aux.enabled cannot both be on (both add query tokens to the prompt)"
            )
        check_choice("vl.depth_sample", self.depth_sample, DepthSample)
        check_choice("vl.pos_embed", self.pos_embed, PosEmbed)
        if self.voxel_size <= 0 or self.max_3d_tokens <= 0:
            raise ValueError("vl.voxel_size and vl.max_3d_tokens must be > 0")


@dataclass
class LLMConfig:
    """The causal language model and its tokenizer."""

    path: str | None = None
    """Local directory with a transformers causal LM and its tokenizer (e.g. Qwen2.5); None builds a tiny Qwen2-architecture LM from the sizes below."""
    tokenizer_path: str | None = None
    """Tokenizer directory if different from path."""
    finetune: FinetuneMode = "lora"
    """'lora' (peft adapters), 'full' or 'frozen'."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA alpha."""
    lora_dropout: float = 0.05
    """LoRA dropout."""
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Module names that receive LoRA adapters."""
    hidden_size: int = 896
    """Width of a freshly built LM (ignored when path is set)."""
    num_layers: int = 24
    """Layers of a freshly built LM (ignored when path is set)."""
    num_heads: int = 14
    """Attention heads of a freshly built LM (ignored when path is set)."""
    num_kv_heads: int = 2
    """Key/value heads of a freshly built LM (ignored when path is set)."""
    intermediate_size: int = 4864
    """MLP width of a freshly built LM (ignored when path is set)."""
    vocab_size: int | None = None
    """Embedding rows of a freshly built LM (None: the tokenizer's length; ignored when path is set). Set to the
    named checkpoint's value (Qwen2.5-7B: 152064) so a model built without the files has its exact shapes."""
    tie_word_embeddings: bool = True
    """Share the input embedding and the output projection of a freshly built LM (ignored when path is set; Qwen2.5-7B: false)."""
    max_length: int = 4096
    """Maximum prompt + answer length in tokens (3D tokens included; keep it above vl.max_3d_tokens + the text)."""
    max_new_tokens: int = 32
    """Tokens generated per answer."""
    gradient_checkpointing: bool = False
    """Gradient checkpointing inside the LLM."""
    use_chat_template: bool = True
    """Wrap prompts with the tokenizer's chat template when it has one (instruct LLMs); plain text otherwise."""
    dtype: LLMDtype = "float32"
    """Weight dtype of a loaded LLM: 'float32', 'bfloat16', 'float16' or 'auto' (the checkpoint's)."""
    embed_scale: bool = False
    """Multiply text token embeddings by sqrt(hidden_size) before the decoder (as Gemma does): a tiny LM built
    from scratch starts with std-0.02 embeddings (norm ~0.16) that the layers' residual writes (norm 7-10) drown,
    so the words barely reach the last layer. Leave off for pretrained LLMs (they were trained without it)."""

    def __post_init__(self) -> None:
        check_choice("llm.finetune", self.finetune, FinetuneMode)
        check_choice("llm.dtype", self.dtype, LLMDtype)
        if self.max_length <= 0 or self.max_new_tokens <= 0:
            raise ValueError(
                f"llm.max_length ({self.max_length}) and llm.max_new_tokens ({self.max_new_tokens}) must be > 0"
            )
        if self.vocab_size is not None and self.vocab_size < 1:
            raise ValueError(f"llm.vocab_size must be >= 1 or null, got {self.vocab_size}")
        if self.finetune == "lora" and not self.lora_target_modules:
            raise ValueError("llm.lora_target_modules must name at least one module when llm.finetune = 'lora'")
