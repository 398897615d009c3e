"""The composed, typed configuration of the whole model and its training.

``VidLLMConfig`` groups the part configs (encoder, cta, recon, metric_depth, vl, llm, data,
train). YAML files are merged onto the dataclass defaults with omegaconf in struct mode, so an
unknown key is an error that names the key and the file; every part validates its values in
``__post_init__``. A field with a fixed set of values is typed with a ``typing.Literal`` alias
(``DataSource``, ``cta.config.CTAMode``, ...): omegaconf, the ``vidllm fit`` parser (jsonargparse;
``--help`` lists the values) and ``__post_init__`` (:func:`recon.choices.check_choice`) all check it
against that one definition.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cta.config import CTAConfig
from recon.attention import AttentionBackend
from recon.choices import check_choice
from recon.config import EncoderConfig, MetricDepthConfig, ReconConfig
from vidllm.errors import ConfigError
from vidllm.io import atomic_write
from vl.config import LLMConfig, VLConfig

DataSource = Literal["synthetic", "scannet"]
"""Where clips come from (data.source)."""
FrameSampling = Literal["uniform", "segment", "stride", "coverage"]
"""Frame samplers (data.frame_sampling)."""
AnswerSampling = Literal["first", "random"]
"""Training target of a QA record with several answers (data.answer_sampling)."""
ResizeSide = Literal["shorter", "longer"]
"""Image side resized to data.image_size (data.resize_side)."""
SyntheticTrajectory = Literal["loop", "walk"]
"""Camera paths of the synthetic videos (data.synthetic_trajectory)."""
GroundingSource = Literal["scanrefer", "multi3drefer", "both"]
"""Records of the 'grounding' task (data.grounding_source)."""
Task = Literal["recon", "qa", "sqa", "grounding", "caption"]
"""Training tasks (entries of data.tasks)."""
Teacher = Literal["geometry", "semantic"]
"""Stage-1 teachers (entries of train.distill.teachers)."""
Stage = Literal[1, 2]
"""Training stages (train.stage): 1 dual-teacher distillation, 2 joint optimisation."""
FRAME_SAMPLINGS = get_args(FrameSampling)
ANSWER_SAMPLINGS = get_args(AnswerSampling)
DATA_SOURCES = get_args(DataSource)
TASKS = get_args(Task)
LR_MULTIPLIER_PREFIX = "train.lr_multipliers."
"""Overrides under this prefix name a dotted module path as one key (``train.lr_multipliers.vl.lm=2``)."""


@dataclass
class DataConfig:
    """Where clips come from and how they are sampled and preprocessed."""

    source: DataSource = "synthetic"
    """'synthetic' (generated scenes in the real formats) or 'scannet' (real ScanNet exports)."""
    root: str = "data/synthetic"
    """Data root: ScanNet-format scene folders under <root>/scans, annotation JSON under <root>/annotations."""
    scanrefer_dir: str | None = None
    """Directory with ScanRefer_filtered_{train,val}.json (default: <root>/annotations)."""
    scanqa_dir: str | None = None
    """Directory with ScanQA_v1.0_{train,val}.json (default: <root>/annotations)."""
    sqa3d_dir: str | None = None
    """Directory with the SQA3D v1_balanced_* files (default: <root>/annotations)."""
    multi3drefer_dir: str | None = None
    """Directory with multi3drefer_{train,val}.json (default: <root>/annotations)."""
    label_map: str | None = None
    """Path of scannetv2-labels.combined.tsv (default: the copy shipped with the synthetic generator)."""
    num_frames: int = 32
    """Frames sampled per clip (S)."""
    image_size: int = 518
    """Target length of the image side chosen by resize_side; the result is centre-cropped to multiples of 14."""
    resize_side: ResizeSide = "shorter"
    """Which side is resized to image_size: 'shorter' (the default) or 'longer' (VGGT-style: a 4:3 frame becomes 378×518 after the crop to multiples of 14)."""
    frame_sampling: FrameSampling = "uniform"
    """Frame sampler: 'uniform', 'segment' (one frame per equal segment: random in training, the middle in evaluation), 'stride' or 'coverage'."""
    frame_stride: int = 10
    """Stride of the 'stride' sampler."""
    answer_sampling: AnswerSampling = "first"
    """Training target of a QA record with several reference answers: 'first' (always the first) or 'random' (one drawn per training draw of the sample)."""
    reverse_prob: float = 0.0
    """Probability that a training draw plays its clip backwards (frames in reverse temporal order; the model frame is then the last frame's camera), drawn from (seed, index, draw): camera motion cannot be learnt from frame order alone. Evaluation clips are never reversed here."""
    tasks: list[Task] = field(default_factory=lambda: ["recon", "qa", "grounding", "caption"])
    """Tasks mixed in training batches."""
    task_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0])
    """Sampling weight of each task in tasks."""
    batch_size: int = 1
    """Clips per batch per device."""
    num_workers: int = 4
    """DataLoader worker processes."""
    synthetic_scenes: int = 50
    """Scenes generated when source is 'synthetic' and root holds none."""
    seed: int = 0
    """Seed of the synthetic generator and the samplers."""
    synthetic_frames: int = 32
    """Frames rendered per synthetic scene."""
    synthetic_width: int = 224
    """Width of the synthetic colour frames (the depth camera gets 5/7 of the colour resolution)."""
    synthetic_height: int = 168
    """Height of the synthetic colour frames."""
    synthetic_trajectory: SyntheticTrajectory = "loop"
    """Camera path of the synthetic videos: 'loop' (a 360° sweep with per-frame jitter: a sparse scan) or 'walk' (a smooth handheld walk along synthetic_arc_degrees)."""
    synthetic_arc_degrees: float = 120.0
    """Arc of the room-centred ellipse the 'walk' trajectory covers, in degrees."""
    synthetic_hfov_degrees: float = 70.0
    """Horizontal field of view of the synthetic camera, in degrees."""
    split_dir: str | None = None
    """Directory with the split lists ({train,val}.txt or scannetv2_{train,val}.txt; default: <root>/splits)."""
    coverage_voxel_size: float = 0.2
    """Voxel size (metres) of the 'coverage' frame sampler."""
    coverage_candidates: int = 128
    """Most frames (evenly spaced) the 'coverage' sampler considers per scene."""
    grounding_source: GroundingSource = "scanrefer"
    """Records of the 'grounding' task: 'scanrefer' (one target), 'multi3drefer' (zero/one/many targets) or 'both'."""
    questions_per_clip: int = 1
    """Text records per drawn VL training sample (qa / sqa / grounding / caption): the drawn record plus up to K - 1
    other VL records of the same scene (drawn from the sample's key), all sharing one encoded clip, so the encoder
    and reconstruction run once per clip while the VL branch sees K questions. 1 = one record per clip (paper path)."""

    def __post_init__(self) -> None:
        check_choice("data.source", self.source, DataSource)
        for name in (
            "synthetic_frames",
            "synthetic_scenes",
            "coverage_candidates",
            "frame_stride",
            "batch_size",
            "questions_per_clip",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        if self.synthetic_width < 14 or self.synthetic_height < 14:
            raise ValueError(
                f"data.synthetic_width/height must be >= 14, got {self.synthetic_width}x{self.synthetic_height}"
            )
        if not 0.0 <= self.reverse_prob <= 1.0:
            raise ValueError(f"data.reverse_prob must be in [0, 1], got {self.reverse_prob}")
        if self.coverage_voxel_size <= 0:
            raise ValueError(f"data.coverage_voxel_size must be > 0, got {self.coverage_voxel_size}")
        if any(w < 0 for w in self.task_weights) or (self.task_weights and sum(self.task_weights) <= 0):
            raise ValueError(f"data.task_weights must be non-negative with a positive sum, got {self.task_weights}")
        check_choice("data.frame_sampling", self.frame_sampling, FrameSampling)
        check_choice("data.answer_sampling", self.answer_sampling, AnswerSampling)
        check_choice("data.resize_side", self.resize_side, ResizeSide)
        check_choice("data.synthetic_trajectory", self.synthetic_trajectory, SyntheticTrajectory)
        check_choice("data.grounding_source", self.grounding_source, GroundingSource)
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"data.tasks has unknown task(s) {unknown}; expected a subset of {list(TASKS)}")
        if len(self.task_weights) != len(self.tasks):
            raise ValueError(f"data.task_weights has {len(self.task_weights)} entries for {len(self.tasks)} tasks")
        if self.num_frames < 1:
            raise ValueError(f"data.num_frames must be >= 1, got {self.num_frames}")
        if self.image_size < 14:
            raise ValueError(f"data.image_size must be >= 14, got {self.image_size}")


@dataclass
class DistillConfig:
    """Stage-1 dual-teacher distillation (paper Eq. 5–7)."""

    geometry_teacher: str | None = None
    """VGGT model.pt (its aggregator.patch_embed) or a DINOv2 directory: the frozen geometry teacher."""
    semantic_teacher: str | None = None
    """Directory of a transformers CLIPVisionModel: the frozen semantic teacher."""
    lambda_sc: float = 1.0
    """Weight λ of the structural-consistency loss L_sc."""
    teachers: list[Teacher] = field(default_factory=lambda: ["geometry", "semantic"])
    """Teachers used: both (the paper), or one of 'geometry' / 'semantic' (the one-teacher ablation; L_sc needs both)."""
    identity_projection: bool = False
    """Distil T'_geom / T'_lang directly (no projection) into a teacher whose width equals the student's; a teacher of another width keeps its linear projection. Off = the paper's lightweight linear projections for every teacher. A tiny-scale option: with it the distilled tokens are the ones the reconstruction branch reads."""

    def __post_init__(self) -> None:
        bad = [t for t in self.teachers if t not in get_args(Teacher)]
        if bad or not self.teachers:
            raise ValueError(
                f"train.distill.teachers = {self.teachers}; expected a non-empty subset of {list(get_args(Teacher))}"
            )


@dataclass
class TrainConfig:
    """Optimisation and the two training stages."""

    stage: Stage = 2
    """Training stage: 1 (dual-teacher distillation) or 2 (joint optimisation)."""
    init_from: str | None = None
    """Weights to start from (a save_pretrained directory or a Lightning .ckpt); weights only."""
    lr: float = 1e-4
    """Base learning rate."""
    lr_multipliers: dict[str, float] = field(default_factory=dict)
    """Per-module learning-rate multipliers, e.g. {encoder: 0.1, llm: 1.0}."""
    weight_decay: float = 0.05
    """AdamW weight decay."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW betas."""
    grad_clip: float = 1.0
    """Gradient-norm clipping."""
    warmup_steps: int = 100
    """Linear warm-up steps before the cosine decay."""
    max_steps: int = 10000
    """Total optimisation steps (the cosine schedule's length)."""
    seed: int = 0
    """Global seed."""
    validate: bool = True
    """Run Lightning's validation pass on the val split during fit (False: no validation batches; the demo
    evaluates the held-out scenes itself after training)."""
    compile: bool = False
    """torch.compile the encoder, aggregator, camera / depth heads and metric depth model in place (nn.Module.compile: weights and state-dict keys unchanged); needs a C++ compiler on CPU."""
    distill: DistillConfig = field(default_factory=DistillConfig)
    """Stage-1 teachers and λ."""

    def __post_init__(self) -> None:
        check_choice("train.stage", self.stage, Stage)
        if len(self.betas) != 2:
            raise ValueError(f"train.betas needs 2 values, got {self.betas}")


@dataclass
class VidLLMConfig:
    """Everything that defines a Vid-LLM model and how it is trained."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """Shared DINOv2 encoder."""
    cta: CTAConfig = field(default_factory=CTAConfig)
    """Cross-Task Adapter."""
    recon: ReconConfig = field(default_factory=ReconConfig)
    """Reconstruction branch."""
    metric_depth: MetricDepthConfig = field(default_factory=MetricDepthConfig)
    """Metric Depth Model and real-scale alignment."""
    vl: VLConfig = field(default_factory=VLConfig)
    """Vision–language branch."""
    llm: LLMConfig = field(default_factory=LLMConfig)
    """Language model."""
    data: DataConfig = field(default_factory=DataConfig)
    """Data."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Training."""
    attention_backend: AttentionBackend = "auto"
    """Attention backend: 'auto' (xformers on CUDA when installed, else SDPA), 'sdpa', 'xformers' or 'math'."""

    def __post_init__(self) -> None:
        check_choice("attention_backend", self.attention_backend, AttentionBackend)


# --------------------------------------------------------------------------- YAML I/O
def config_from_dict(data: dict | None, source: str = "<dict>", base: VidLLMConfig | None = None) -> VidLLMConfig:
    """Merge a nested dict onto ``base`` (default: the dataclass defaults) and validate it.

    Raises:
        ConfigError: naming ``source`` and the offending key for unknown keys, wrong types
            or invalid values.
    """
    schema = OmegaConf.structured(base if base is not None else VidLLMConfig)
    OmegaConf.set_struct(schema, True)
    for key in _free_form_dict_keys(VidLLMConfig):
        OmegaConf.set_struct(OmegaConf.select(schema, key), False)
    try:
        merged = OmegaConf.merge(schema, OmegaConf.create(data or {}))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or _group_given_a_scalar(schema, data) or "?"
        reason = str(err).splitlines()[0]
        if "not in struct" in reason or "Key '" in reason and "not in" in reason:
            raise ConfigError(f"{source}: unknown config key '{key}'") from None
        raise ConfigError(f"{source}: invalid value for config key '{key}': {reason}") from None
    try:
        return OmegaConf.to_object(merged)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{source}: {err}") from None
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise ConfigError(f"{source}: invalid value for config key '{key}': {str(err).splitlines()[0]}") from None


def _group_given_a_scalar(schema, data, prefix: str = "") -> str | None:
    """Dotted key of the first config group (a section) that ``data`` sets to a non-mapping.

    OmegaConf's merge error for ``data: 5`` carries no key; this recovers it for the message.
    """
    if not isinstance(data, dict):
        return None
    for key, value in data.items():
        node = schema.get(key) if isinstance(key, str) and key in schema else None
        if not OmegaConf.is_dict(node):
            continue
        if not isinstance(value, dict) and value is not None:
            return f"{prefix}{key}"
        inner = _group_given_a_scalar(node, value, f"{prefix}{key}.")
        if inner:
            return inner
    return None


def _free_form_dict_keys(cls: type, prefix: str = "") -> list[str]:
    """Dotted keys of ``dict``-typed fields, whose entries are user-chosen (not struct-checked)."""
    keys = []
    for f in dataclasses.fields(cls):
        annotation = str(f.type)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            keys += _free_form_dict_keys(type(default), f"{prefix}{f.name}.")
        elif annotation.startswith("dict"):
            keys.append(f"{prefix}{f.name}")
    return keys


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> VidLLMConfig:
    """Load a YAML config onto the defaults, then apply dotted ``key=value`` overrides.

    A YAML may name other YAMLs to layer under it with a top-level ``defaults: [file, ...]``
    list (paths relative to the file).
    """
    from vidllm.shipped import find_config

    path = find_config(path)
    data = _read_yaml_layers(path)
    cfg = config_from_dict(data, source=str(path))
    if overrides:
        multipliers = {}
        rest = []
        for item in overrides:  # lr_multipliers keys are dotted module paths: 'train.lr_multipliers.vl.lm=2'
            key, sep, value = str(item).partition("=")
            if sep and key.startswith(LR_MULTIPLIER_PREFIX):
                multipliers[key[len(LR_MULTIPLIER_PREFIX) :]] = value
            else:
                rest.append(item)
        try:
            dotlist = OmegaConf.to_container(OmegaConf.from_dotlist(rest))
        except OmegaConfBaseException as err:
            raise ConfigError(f"command-line overrides: {str(err).splitlines()[0]}") from None
        if multipliers:
            import yaml

            dotlist.setdefault("train", {}).setdefault("lr_multipliers", {}).update(
                {k: yaml.safe_load(v) for k, v in multipliers.items()}
            )
        cfg = config_from_dict(dotlist, source="command-line overrides", base=cfg)
    return cfg


def _read_yaml_layers(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in seen:
        raise ConfigError(f"{path}: 'defaults' includes itself ({' -> '.join(map(str, seen))})")
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as err:  # yaml.YAMLError and omegaconf grammar errors
        raise ConfigError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    layers = raw.pop("defaults", []) or []
    if not isinstance(layers, list):
        raise ConfigError(f"{path}: 'defaults' must be a list of YAML paths")
    merged = OmegaConf.create({})
    for layer in layers:
        if not (path.parent / str(layer)).is_file():
            raise ConfigError(f"{path}: 'defaults' names {str(layer)!r}, not found: {path.parent / str(layer)}")
        merged = OmegaConf.merge(merged, _read_yaml_layers(path.parent / str(layer), seen + (path.resolve(),)))
    return OmegaConf.to_container(OmegaConf.merge(merged, raw))


def save_config(cfg: VidLLMConfig, path: str | os.PathLike) -> None:
    """Write ``cfg`` as YAML atomically (:func:`vidllm.io.atomic_write`: temp file in the same folder, then rename)."""
    text = OmegaConf.to_yaml(OmegaConf.structured(cfg))
    with atomic_write(path, "w") as handle:
        handle.write(text)
