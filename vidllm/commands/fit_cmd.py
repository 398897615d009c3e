"""``vidllm fit|validate|test|predict``: Lightning training and evaluation of either stage.

    vidllm fit --stage 1 --config configs/tiny.yaml --trainer.max_steps 20
    vidllm fit --stage 2 --config configs/tiny.yaml --model.init_from outputs/stage1/model --trainer.max_steps 20
    vidllm fit --stage 2 --config configs/tiny.yaml --ckpt_path last          # resume the same stage

Arguments (a jsonargparse parser, :func:`build_parser`; ``vidllm fit --help`` lists them all with the
config fields' docstrings):

* ``--config FILE`` — a model config (typed :class:`~vidllm.config.VidLLMConfig` YAML, ``defaults:``
  layering) or a saved ``cli_config.yaml``; repeatable, merged in order (later wins).
  ``--stage N`` layers ``configs/stageN.yaml`` (the stage's defaults) on top of them.
* ``--trainer.KEY VALUE`` — a ``lightning.Trainer`` argument, type-checked against its signature
  (``--trainer.devices 2``, ``--trainer.strategy ddp``); not ``logger``/``callbacks``/``plugins``.
* ``--model.GROUP.KEY VALUE`` — any config field, type-checked (``--model.data.num_frames 4``);
  ``--GROUP.KEY`` is short for it, ``--model.init_from`` is ``train.init_from`` (weights only), and
  ``--train.lr_multipliers.DOTTED.MODULE V`` sets one multiplier.
* ``--trainer_config FILE`` — a YAML of Trainer arguments (``configs/strategies/``: DDP, FSDP,
  DeepSpeed ZeRO-2/3, ``strategy: {class_path, init_args}``), applied before ``--trainer.*``.
* ``--ckpt_path PATH|last`` — resume the same stage from a Lightning checkpoint.
* ``--print_config`` — print the resolved config (YAML) and exit.
* ``--out DIR`` — run directory: ``config.yaml`` (the resolved model config), ``cli_config.yaml``
  (the whole resolved command; ``--config`` it to rerun), ``csv/`` and ``tensorboard/`` logs,
  ``checkpoints/`` (``last.ckpt``), and after ``fit`` the trained model as ``model/``
  (``save_pretrained``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import pickle
from pathlib import Path

import yaml

from vidllm.config import LR_MULTIPLIER_PREFIX, VidLLMConfig, config_from_dict, save_config
from vidllm.errors import CheckpointError, ConfigError
from vidllm.io import atomic_write
from vidllm.shipped import shipped_config

_log = logging.getLogger(__name__)

MODES = ("fit", "validate", "test", "predict")
GROUPS = tuple(f.name for f in dataclasses.fields(VidLLMConfig))
"""Top-level config sections: ``--GROUP.KEY`` is shorthand for ``--model.GROUP.KEY``."""
TRAINER_SKIP = {"logger", "callbacks", "plugins"}
"""Trainer arguments built by :func:`default_trainer_kwargs` (CSV + TensorBoard loggers, checkpointing), not settable here."""


def build_parser(mode: str = "fit"):
    """The jsonargparse parser of ``vidllm <mode>``: ``model`` is :class:`~vidllm.config.VidLLMConfig`
    (types checked, attribute docstrings as help), ``trainer`` is ``lightning.Trainer``'s signature."""
    import jsonargparse
    import lightning as L
    import torch
    from jsonargparse import ActionConfigFile, ArgumentParser

    from vidllm.progress import terminal_progress

    jsonargparse.set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ArgumentParser(
        prog=f"vidllm {mode}",
        exit_on_error=False,
        default_env=False,
        description=(
            f"vidllm {mode}: Lightning {'training' if mode == 'fit' else mode} of a stage. --config FILE is a model config "
            "(configs/*.yaml, `defaults:` layering) or a saved <out>/cli_config.yaml; repeat it to merge files in order "
            "(later wins). --GROUP.KEY V is short for --model.GROUP.KEY V, --model.init_from for --model.train.init_from, "
            "--train.lr_multipliers.DOTTED.MODULE V sets one multiplier."
        ),
    )
    parser.add_argument(
        "--config",
        action=ActionConfigFile,
        help="model config YAML (e.g. configs/tiny.yaml); repeatable, later files win",
    )
    parser.add_argument(
        "--stage",
        type=int | None,
        default=None,
        help="training stage 1 or 2 (default: train.stage of the config); layers configs/stage<N>.yaml on the config files",
    )
    parser.add_argument("--out", type=str | None, default=None, help="run directory (default: outputs/stage<N>)")
    parser.add_argument(
        "--ckpt_path",
        type=str | None,
        default=None,
        help="Lightning checkpoint to resume the same stage from ('last' = <out>/checkpoints/last.ckpt)",
    )
    parser.add_argument("--seed", type=int | None, default=None, help="global seed (default: model.train.seed)")
    parser.add_argument(
        "--trainer_config",
        type=str | None,
        default=None,
        help="YAML of lightning.Trainer arguments, e.g. configs/strategies/fsdp.yaml (strategy {class_path, init_args}); --trainer.* still override it",
    )
    parser.add_class_arguments(VidLLMConfig, "model", fail_untyped=False)
    parser.add_class_arguments(L.Trainer, "trainer", skip=TRAINER_SKIP, fail_untyped=False)
    cuda = torch.cuda.is_available()
    parser.set_defaults(
        {  # what fit uses unless told otherwise; max_steps / gradient_clip_val null = model.train's
            "trainer.max_steps": None,
            "trainer.gradient_clip_val": None,
            "trainer.devices": 1,
            "trainer.log_every_n_steps": 1,
            "trainer.num_sanity_val_steps": 0,
            "trainer.enable_progress_bar": terminal_progress(),
            "trainer.precision": "bf16-mixed" if cuda and torch.cuda.is_bf16_supported() else "32-true",
        }
    )
    return parser


def _model_layer(path: str) -> tuple[dict, dict]:
    """One ``--config`` file as (model dict, other top-level keys): a model config with its ``defaults:``
    layers resolved, or a saved CLI config (top-level ``model:`` / ``trainer:`` ...)."""
    from vidllm.config import _read_yaml_layers
    from vidllm.shipped import find_config

    resolved = find_config(path)
    data = _read_yaml_layers(resolved)
    if "model" in data or "trainer" in data:
        rest = {k: v for k, v in data.items() if k != "model"}
        return dict(data.get("model") or {}), rest
    return data, {}


def _rewrite_argv(argv: list[str]) -> list[str]:
    """Pre-step before jsonargparse: ``--GROUP.KEY`` → ``--model.GROUP.KEY``, ``--model.init_from`` →
    ``--model.train.init_from``, and each ``--config FILE`` → its resolved content (``defaults:`` layered,
    validated against the typed config naming the file; the stage defaults merged onto the last file)."""
    from omegaconf import OmegaConf

    out: list[str] = []
    configs: list[tuple[int, str]] = []
    stage = None
    i = 0
    while i < len(argv):
        arg, value = argv[i], None
        key = arg.split("=", 1)[0]
        if key in ("--config", "--stage"):
            if "=" in arg:
                value = arg.split("=", 1)[1]
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                raise ConfigError(f"{key} needs a value")
            if key == "--config":
                configs.append((len(out), value))
                out.append("--config")
                out.append(value)
            else:
                stage = value
                out += ["--stage", value]
            i += 1
            continue
        if arg.startswith("--"):
            name = key[2:]
            if name == "model.init_from":
                name = "model.train.init_from"
            elif name.split(".", 1)[0] in GROUPS and "." in name:
                name = "model." + name
            arg = "--" + name + (arg[len(key) :] if "=" in arg else "")
        out.append(arg)
        i += 1
    if not configs and not any(a in ("-h", "--help") for a in argv):
        raise ConfigError("--config FILE is required (e.g. --config configs/tiny.yaml)")
    base = None
    layers = []
    for _, path in configs:
        model, rest = _model_layer(path)
        base = config_from_dict(model, source=str(path), base=base)
        if stage is None and rest.get("stage") is not None:
            stage = rest["stage"]
        layers.append((model, rest))
    if configs:
        try:
            stage = int(stage) if stage is not None else base.train.stage
        except ValueError:
            raise ConfigError(f"--stage {stage!r}: expected 1 or 2") from None
        if stage not in (1, 2):
            raise ConfigError(f"--stage {stage}: expected 1 or 2")
        stage_file = shipped_config(f"stage{stage}.yaml")
        stage_data = OmegaConf.to_container(OmegaConf.load(stage_file)) or {}
        config_from_dict(stage_data, source=str(stage_file), base=base)
        model, rest = layers[-1]
        layers[-1] = (
            OmegaConf.to_container(OmegaConf.merge(model, stage_data, {"train": {"stage": stage}})),
            {**rest, "stage": stage},
        )
        for (position, _), (model, rest) in zip(configs, layers):
            out[position + 1] = yaml.safe_dump({**rest, "model": model}, sort_keys=False)
    return out


def parse_args(argv: list[str], mode: str = "fit") -> argparse.Namespace:
    """``vidllm <mode>`` arguments → a Namespace with ``cfg`` (the validated :class:`VidLLMConfig`),
    ``trainer`` (only the Trainer arguments given), ``cli_config`` (the resolved config, as YAML) and the flags.

    ``--help`` and ``--print_config`` print and raise ``SystemExit(0)``; a bad argument is a one-line
    :class:`ConfigError` that names it."""
    argv = list(argv)
    multipliers = {}
    kept = []
    i = 0
    while i < len(argv):  # lr_multipliers keys are dotted module paths: --train.lr_multipliers.vl.lm 2
        key = argv[i].split("=", 1)[0][2:]
        key = key[len("model.") :] if key.startswith("model.") else key
        if argv[i].startswith("--") and key.startswith(LR_MULTIPLIER_PREFIX):
            if "=" in argv[i]:
                value = argv[i].split("=", 1)[1]
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                raise ConfigError(f"{argv[i]} needs a value")
            multipliers[key[len(LR_MULTIPLIER_PREFIX) :]] = yaml.safe_load(value)
        else:
            kept.append(argv[i])
        i += 1
    parser = build_parser(mode)
    try:
        ns = parser.parse_args(_rewrite_argv(kept))
    except argparse.ArgumentError as err:
        raise ConfigError(" ".join(str(err).split())) from None
    model = ns.model.as_dict()
    if multipliers:
        model["train"]["lr_multipliers"] = {**(model["train"].get("lr_multipliers") or {}), **multipliers}
    cfg = config_from_dict(model, source="command-line arguments")
    defaults = parser.get_defaults().trainer.as_dict()
    given = {k: v for k, v in ns.trainer.as_dict().items() if v != defaults.get(k)}
    statics = {
        k: v
        for k, v in defaults.items()
        if k in ("devices", "log_every_n_steps", "num_sanity_val_steps", "enable_progress_bar", "precision")
    }
    resolved = {k: v for k, v in ns.as_dict().items() if k not in ("config", "__path__")}
    resolved["model"] = dataclasses.asdict(cfg)
    return argparse.Namespace(
        command=mode,
        cfg=cfg,
        stage=cfg.train.stage,
        out=ns.out,
        ckpt_path=ns.ckpt_path,
        seed=ns.seed,
        trainer_config=ns.trainer_config,
        trainer_defaults=statics,
        trainer=given,
        cli_config=yaml.safe_dump(resolved, sort_keys=False),
    )


def resolve_config(config_path: str, stage: int | None, pairs: dict[str, str]) -> VidLLMConfig:
    """Model config → stage defaults (the shipped ``stage<N>.yaml``; missing is an error) → ``--KEY VALUE``
    overrides, through ``vidllm fit``'s own parser (:func:`parse_args`)."""
    argv = ["--config", str(config_path), *(["--stage", str(stage)] if stage else [])]
    for key, value in pairs.items():
        argv += [f"--{key}", str(value)]
    return parse_args(argv).cfg


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
        "logger": [
            CSVLogger(str(out), name="csv", version=""),
            TensorBoardLogger(str(out), name="tensorboard", version=""),
        ],
        "callbacks": [
            ModelCheckpoint(
                dirpath=str(out / "checkpoints"),
                save_last=True,
                every_n_train_steps=max(1, min(500, cfg.train.max_steps // 4 or 1)),
            ),
            LearningRateMonitor("step"),
            *([] if terminal_progress() else [LineProgress(60.0, f"stage {cfg.train.stage}")]),
        ],
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
        needed += [
            v for k, v in (("geometry", d.geometry_teacher), ("semantic", d.semantic_teacher)) if k in d.teachers and v
        ]
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
    print(
        f"vidllm fit: teacher files not found; training the tiny synthetic teachers into {out} (vidllm teachers)",
        flush=True,
    )
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
    cfg = args.cfg
    out = Path(args.out or f"outputs/stage{cfg.train.stage}")
    ckpt = args.ckpt_path  # checked before any data generation or model building
    if ckpt == "last":
        ckpt = str(out / "checkpoints" / "last.ckpt")
        if not Path(ckpt).is_file():
            raise ConfigError(f"--ckpt_path last: {ckpt} does not exist (nothing to resume in {out})")
    elif (
        ckpt is not None
        and ckpt not in ("best", "hpc")
        and not ckpt.startswith("registry")
        and "://" not in ckpt
        and not Path(ckpt).exists()
    ):
        raise ConfigError(f"--ckpt_path {ckpt}: no such checkpoint file")
    if ckpt is not None and Path(ckpt).is_file() and not _looks_like_torch_file(Path(ckpt)):
        raise CheckpointError(f"--ckpt_path {ckpt}: not a torch checkpoint (empty, truncated or another format)")
    check_checkpoints(cfg, will_create=tuple(teachers_to_build(cfg)))
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.train.seed if args.seed is None else args.seed, workers=True, verbose=False)
    trainer_kwargs = {**default_trainer_kwargs(cfg, out), **args.trainer_defaults}
    if args.trainer_config:
        trainer_kwargs.update(read_trainer_config(args.trainer_config))
    trainer_kwargs.update(args.trainer)
    if trainer_kwargs.get("max_steps") is None:
        trainer_kwargs["max_steps"] = cfg.train.max_steps
    if trainer_kwargs.get("gradient_clip_val") is None:
        trainer_kwargs["gradient_clip_val"] = cfg.train.grad_clip
    if "strategy" in trainer_kwargs:
        trainer_kwargs["strategy"] = build_strategy(trainer_kwargs["strategy"])
    if cfg.data.source == "synthetic":
        ensure_synthetic(cfg.data)
    ensure_teachers(cfg)
    save_config(cfg, out / "config.yaml")
    with atomic_write(out / "cli_config.yaml", "w") as handle:  # the whole resolved command: --config it to rerun
        handle.write(args.cli_config)
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
        raise CheckpointError(
            f"--ckpt_path {ckpt}: not a readable checkpoint (the file is empty or truncated)"
        ) from None
    if mode == "fit" and trainer.is_global_zero:
        module.model.save_pretrained(out / "model")
        from vidllm.evaluation.report import write_json

        # how far training got: a run can end before max_steps (--trainer.max_time, max_epochs)
        write_json(
            out / "model" / "fit_state.json",
            {"global_step": int(trainer.global_step), "max_steps": int(trainer.max_steps), "stage": cfg.train.stage},
        )
        print(f"vidllm fit: saved the trained model to {out / 'model'} after {trainer.global_step} steps", flush=True)
    return 0
