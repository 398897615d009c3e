"""``vidllm fit|validate|test|predict``: Lightning training and evaluation of either stage.

    vidllm fit --stage 1 --config configs/tiny.yaml --trainer.max_steps 20
    vidllm fit --stage 2 --config configs/tiny.yaml --model.init_from outputs/stage1/model --trainer.max_steps 20
    vidllm fit --stage 2 --config configs/tiny.yaml --ckpt_path last          # resume the same stage

Arguments:

* ``--config FILE`` — the model config (typed :class:`~vidllm.config.VidLLMConfig` YAML).
  ``--stage N`` layers ``configs/stageN.yaml`` (the stage's defaults) on top of it.
* ``--trainer.KEY VALUE`` — any ``lightning.Trainer`` argument (checked against its signature;
  values are parsed as YAML: ``--trainer.devices 2``, ``--trainer.strategy ddp``).
* ``--GROUP.KEY VALUE`` — any config field (``--data.num_frames 4``, ``--cta.mode concat_sa``);
  ``--model.`` may prefix them, and ``--model.init_from`` is ``train.init_from`` (weights only).
* ``--trainer_config FILE`` — a YAML of Trainer arguments (``configs/strategies/``: DDP, FSDP,
  DeepSpeed ZeRO-2/3), applied before ``--trainer.*``.
* ``--ckpt_path PATH|last`` — resume the same stage from a Lightning checkpoint.
* ``--out DIR`` — run directory: ``config.yaml`` (resolved), ``csv/`` and ``tensorboard/`` logs,
  ``checkpoints/`` (``last.ckpt``), and after ``fit`` the trained model as ``model/``
  (``save_pretrained``).
"""

from __future__ import annotations

import argparse
import inspect
import logging
import pickle
from pathlib import Path

import yaml

from vidllm.config import LR_MULTIPLIER_PREFIX, VidLLMConfig, config_from_dict, load_config, save_config
from vidllm.errors import CheckpointError, ConfigError
from vidllm.shipped import shipped_config

_log = logging.getLogger(__name__)

MODES = ("fit", "validate", "test", "predict")
ACCEPTS_EXTRA = True  # --trainer.* and --GROUP.KEY arguments are parsed here, not by argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", type=int, choices=(1, 2), default=None, help="training stage (default: train.stage of the config)")
    parser.add_argument("--config", required=True, help="model config YAML (e.g. configs/tiny.yaml)")
    parser.add_argument("--out", default=None, help="run directory (default: outputs/stage<N>)")
    parser.add_argument("--ckpt_path", default=None, help="Lightning checkpoint to resume the same stage from ('last' = <out>/checkpoints/last.ckpt)")
    parser.add_argument("--seed", type=int, default=None, help="global seed (default: train.seed)")
    parser.add_argument("--trainer_config", default=None, help="YAML of lightning.Trainer arguments, e.g. configs/strategies/fsdp.yaml (--trainer.* still override it)")
    parser.epilog = "Also: --trainer.KEY VALUE (any lightning.Trainer argument) and --GROUP.KEY VALUE (any config field; see `vidllm config --list`)."


def split_dotted(extra: list[str]) -> tuple[dict, list[str]]:
    """``--trainer.x 1 --data.y=2`` → ({"trainer.x": "1", ...}) in order; errors on anything else."""
    pairs: dict[str, str] = {}
    i = 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--") or "." not in arg:
            raise ConfigError(f"unrecognised argument {arg!r}; expected --trainer.KEY VALUE or --GROUP.KEY VALUE")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(extra):
                raise ConfigError(f"argument {arg} needs a value")
            key, value = arg[2:], extra[i + 1]
            i += 2
        pairs[key] = value
    return pairs, []


def _trainer_kwargs(pairs: dict[str, str]) -> dict:
    import lightning as L

    allowed = set(inspect.signature(L.Trainer.__init__).parameters) - {"self"}
    out = {}
    for key, value in pairs.items():
        if not key.startswith("trainer."):
            continue
        name = key[len("trainer."):]
        if name not in allowed:
            raise ConfigError(f"--trainer.{name}: not a lightning.Trainer argument")
        out[name] = yaml.safe_load(value)
    return out


def resolve_config(config_path: str, stage: int | None, pairs: dict[str, str]) -> VidLLMConfig:
    """Model config → stage defaults (the shipped ``stage<N>.yaml``; missing is an error) → command-line overrides."""
    from omegaconf import OmegaConf

    cfg = load_config(config_path)
    stage = stage or cfg.train.stage
    stage_file = shipped_config(f"stage{stage}.yaml")
    cfg = config_from_dict(OmegaConf.to_container(OmegaConf.load(stage_file)), source=str(stage_file), base=cfg)
    overrides = {"train": {"stage": stage}}
    for key, value in pairs.items():
        if key.startswith("trainer."):
            continue
        dotted = key[len("model."):] if key.startswith("model.") else key
        if dotted == "init_from":
            dotted = "train.init_from"
        if dotted.startswith(LR_MULTIPLIER_PREFIX):  # the key is a dotted module path: --train.lr_multipliers.vl.lm 2
            overrides.setdefault("train", {}).setdefault("lr_multipliers", {})[dotted[len(LR_MULTIPLIER_PREFIX):]] = yaml.safe_load(value)
            continue
        node = overrides
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    return config_from_dict(overrides, source="command-line arguments", base=cfg)


def default_trainer_kwargs(cfg: VidLLMConfig, out: Path) -> dict:
    import torch
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from vidllm.progress import terminal_progress
    from vidllm.training.checkpoint_io import AtomicCheckpointIO
    from vidllm.training.line_progress import LineProgress

    cuda = torch.cuda.is_available()
    return {
        "default_root_dir": str(out),
        "max_steps": cfg.train.max_steps,
        "gradient_clip_val": cfg.train.grad_clip,
        "precision": "bf16-mixed" if cuda and torch.cuda.is_bf16_supported() else "32-true",
        "accelerator": "auto",
        "devices": 1,
        "log_every_n_steps": 1,
        "logger": [CSVLogger(str(out), name="csv", version=""), TensorBoardLogger(str(out), name="tensorboard", version="")],
        "callbacks": [ModelCheckpoint(dirpath=str(out / "checkpoints"), save_last=True, every_n_train_steps=max(1, min(500, cfg.train.max_steps // 4 or 1))), LearningRateMonitor("step"),
                      *([] if terminal_progress() else [LineProgress(60.0, f"stage {cfg.train.stage}")])],
        "num_sanity_val_steps": 0,
        **({} if cfg.train.validate else {"limit_val_batches": 0}),
        "enable_progress_bar": terminal_progress(),  # a log file gets the CSV/TensorBoard logs, not bar refreshes
        "plugins": [AtomicCheckpointIO()],
    }


def build_tokenizer(cfg: VidLLMConfig, out: Path):
    """The tokenizer of a freshly built LLM: ``llm.tokenizer_path``, else the one saved with
    ``train.init_from``, else ``<out>/tokenizer``, else a word-level one built from the dataset's
    annotations (saved to ``<out>/tokenizer``); None when the LLM is loaded from a directory."""
    from vl.tokenizer import build_word_tokenizer, load_tokenizer

    if cfg.llm.path is not None:
        return None
    if cfg.llm.tokenizer_path:
        return load_tokenizer(cfg.llm.tokenizer_path)
    init = Path(cfg.train.init_from) if cfg.train.init_from else None
    if init is not None and init.is_dir() and (init / "tokenizer").is_dir():
        return load_tokenizer(init / "tokenizer")  # the vocabulary the initial weights were trained with
    if (out / "tokenizer").is_dir():
        return load_tokenizer(out / "tokenizer")
    from vidllm.data.corpus import annotation_corpus

    return build_word_tokenizer(annotation_corpus(cfg.data), save_dir=out / "tokenizer")


def _quiet_known_warnings() -> None:
    """Silence third-party deprecation chatter that says nothing about the user's run."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*is deprecated.*")


def teachers_to_build(cfg: VidLLMConfig) -> list[str]:
    """The missing teacher files :func:`ensure_teachers` will make (synthetic data, default layout); else []."""
    d = cfg.train.distill
    needed = []
    if cfg.train.stage == 1:
        needed += [v for k, v in (("geometry", d.geometry_teacher), ("semantic", d.semantic_teacher)) if k in d.teachers and v]
    if cfg.recon.vggt_checkpoint and not cfg.train.init_from:
        needed.append(cfg.recon.vggt_checkpoint)
    missing = [v for v in needed if not Path(v).exists()]
    if not missing or cfg.data.source != "synthetic":
        return []
    from vidllm.teachers.build import default_teacher_paths

    layout = {str(p) for p in default_teacher_paths(_teacher_dir(missing)).values()}
    if any(str(Path(v)) not in layout for v in missing):
        return []  # not the default layout: check_checkpoints reports the missing files
    return missing


def _teacher_dir(missing: list[str]) -> Path:
    return Path(missing[0]).parent.parent if Path(missing[0]).name == "model.pt" else Path(missing[0]).parent


def ensure_teachers(cfg: VidLLMConfig) -> None:
    """On synthetic data, make the tiny teachers (``vidllm teachers``) when a file the run needs is
    missing — the stage-1 teachers, or ``recon.vggt_checkpoint`` when no ``train.init_from`` is
    given — and the configured paths are the layout ``vidllm teachers --out DIR`` writes."""
    missing = teachers_to_build(cfg)
    if not missing:
        return
    from vidllm.teachers.build import build_teachers

    out = _teacher_dir(missing)
    print(f"vidllm fit: teacher files not found; training the tiny synthetic teachers into {out} (vidllm teachers)", flush=True)
    build_teachers(cfg, out)


def _looks_like_torch_file(path: Path) -> bool:
    """A complete ``torch.save`` file: a zip archive (the default format) or a legacy pickle stream."""
    import zipfile

    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as handle:
        return handle.read(1) == b"\x80"


def run(args: argparse.Namespace) -> int:
    import lightning as L

    _quiet_known_warnings()
    from vidllm.data.datamodule import VidLLMDataModule, ensure_synthetic
    from vidllm.training.module import VidLLMModule
    from vidllm.training.paths import check_checkpoints
    from vidllm.training.strategies import build_strategy, read_trainer_config

    mode = getattr(args, "command", "fit")
    pairs, _ = split_dotted(args.extra)
    cfg = resolve_config(args.config, args.stage, pairs)
    out = Path(args.out or f"outputs/stage{cfg.train.stage}")
    ckpt = args.ckpt_path  # checked before any data generation or model building
    if ckpt == "last":
        ckpt = str(out / "checkpoints" / "last.ckpt")
        if not Path(ckpt).is_file():
            raise ConfigError(f"--ckpt_path last: {ckpt} does not exist (nothing to resume in {out})")
    elif ckpt is not None and ckpt not in ("best", "hpc") and not ckpt.startswith("registry") and "://" not in ckpt and not Path(ckpt).exists():
        raise ConfigError(f"--ckpt_path {ckpt}: no such checkpoint file")
    if ckpt is not None and Path(ckpt).is_file() and not _looks_like_torch_file(Path(ckpt)):
        raise CheckpointError(f"--ckpt_path {ckpt}: not a torch checkpoint (empty, truncated or another format)")
    check_checkpoints(cfg, will_create=tuple(teachers_to_build(cfg)))
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.train.seed if args.seed is None else args.seed, workers=True, verbose=False)
    trainer_kwargs = default_trainer_kwargs(cfg, out)
    if args.trainer_config:
        trainer_kwargs.update(read_trainer_config(args.trainer_config))
    trainer_kwargs.update(_trainer_kwargs(pairs))
    if "strategy" in trainer_kwargs:
        trainer_kwargs["strategy"] = build_strategy(trainer_kwargs["strategy"])
    if cfg.data.source == "synthetic":
        ensure_synthetic(cfg.data)
    ensure_teachers(cfg)
    save_config(cfg, out / "config.yaml")
    tokenizer = build_tokenizer(cfg, out)
    module = VidLLMModule(cfg, tokenizer)
    data = VidLLMDataModule(cfg.data)
    trainer = L.Trainer(**trainer_kwargs)
    print(f"vidllm {mode}: stage {cfg.train.stage}, run directory {out}", flush=True)
    # Resume never unpickles arbitrary objects, whatever torch's default (README "Failure modes").
    kwargs = {"datamodule": data, "ckpt_path": ckpt, "weights_only": True if ckpt is not None else None}
    try:
        if mode == "fit":
            trainer.fit(module, **kwargs)
        elif mode == "validate":
            trainer.validate(module, **kwargs)
        elif mode == "test":
            trainer.test(module, **kwargs)
        else:
            trainer.predict(module, **kwargs)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"--ckpt_path {ckpt}: refused to load — the file contains Python objects beyond tensors, and loading it "
            f"could run code ({str(err).splitlines()[0]})"
        ) from None
    except EOFError:  # an empty or truncated file (torch.load reports other corruption as RuntimeError)
        raise CheckpointError(f"--ckpt_path {ckpt}: not a readable checkpoint (the file is empty or truncated)") from None
    if mode == "fit" and trainer.is_global_zero:
        module.model.save_pretrained(out / "model")
        from vidllm.evaluation.report import write_json

        # how far training got: a run can end before max_steps (--trainer.max_time, max_epochs)
        write_json(out / "model" / "fit_state.json", {"global_step": int(trainer.global_step), "max_steps": int(trainer.max_steps), "stage": cfg.train.stage})
        print(f"vidllm fit: saved the trained model to {out / 'model'} after {trainer.global_step} steps", flush=True)
    return 0
