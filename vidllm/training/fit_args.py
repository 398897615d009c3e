"""The arguments of ``vidllm fit|validate|test|predict`` and of :func:`vidllm.training.fit.fit`: a jsonargparse
parser over the typed model config and ``lightning.Trainer``'s signature (:func:`build_parser`), resolved into
:class:`FitArgs` by :func:`parse_fit_args`.

* ``--config FILE`` — a model config (typed :class:`~vidllm.config.VidLLMConfig` YAML, ``defaults:``
  layering) or a saved ``cli_config.yaml``; repeatable, merged in order (later wins).
  ``--stage N`` layers ``configs/stageN.yaml`` (the stage's defaults) on top of them.
* ``--trainer.KEY VALUE`` — a ``lightning.Trainer`` argument, type-checked against its signature
  (``--trainer.devices 2``, ``--trainer.strategy ddp``); not ``logger``/``callbacks``/``plugins``.
* ``--model.GROUP.KEY VALUE`` — any config field, type-checked (``--model.data.num_frames 4``);
  ``--GROUP.KEY`` is short for it, ``--model.init_from`` is ``train.init_from`` (weights only), and
  ``--train.lr_multipliers.DOTTED.MODULE V`` sets one multiplier.
* ``--trainer_config FILE`` — a YAML of Trainer arguments (``configs/strategies/``: DDP, FSDP,
  DeepSpeed ZeRO-2/3, ``strategy: {class_path, init_args}``). Every ``--trainer.KEY`` written on the command line
  wins over it, also one that repeats the parser's default.
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
import os
from collections.abc import Sequence
from dataclasses import dataclass

import yaml

from vidllm.config import LR_MULTIPLIER_PREFIX, VidLLMConfig, config_from_dict
from vidllm.errors import ConfigError
from vidllm.shipped import shipped_config

__all__ = ["MODES", "GROUPS", "TRAINER_SKIP", "FitArgs", "build_parser", "parse_fit_args", "resolve_config"]

MODES = ("fit", "validate", "test", "predict")
GROUPS = tuple(f.name for f in dataclasses.fields(VidLLMConfig))
"""Top-level config sections: ``--GROUP.KEY`` is shorthand for ``--model.GROUP.KEY``."""
TRAINER_SKIP = {"logger", "callbacks", "plugins"}
"""Trainer arguments built by :func:`vidllm.training.fit.default_trainer_kwargs` (CSV + TensorBoard loggers,
checkpointing), not settable here."""
TRAINER_STATICS = ("devices", "log_every_n_steps", "num_sanity_val_steps", "enable_progress_bar", "precision")
"""Trainer arguments whose parser defaults (:func:`build_parser`) apply even when not given."""


@dataclass(frozen=True)
class FitArgs:
    """One resolved ``vidllm <mode>`` command: what :func:`vidllm.training.fit.run_fit` runs."""

    mode: str
    """'fit', 'validate', 'test' or 'predict'."""
    cfg: VidLLMConfig
    """The validated model config (config files → stage defaults → ``--model.*`` overrides)."""
    out: str | None
    """Run directory (None: ``outputs/stage<N>``)."""
    ckpt_path: str | None
    """Lightning checkpoint to resume from ('last' = ``<out>/checkpoints/last.ckpt``)."""
    seed: int | None
    """Global seed (None: ``cfg.train.seed``)."""
    trainer_config: str | None
    """YAML of Trainer arguments applied before :attr:`trainer`."""
    trainer_defaults: dict
    """The parser's defaults of :data:`TRAINER_STATICS` (applied under the trainer config file)."""
    trainer: dict
    """The Trainer arguments given: every ``--trainer.KEY`` of the command line, and config-file values
    that differ from the parser's defaults."""
    cli_config: str
    """The whole resolved command as YAML (saved as ``<out>/cli_config.yaml``; ``--config`` it to rerun)."""

    @property
    def stage(self) -> int:
        return self.cfg.train.stage


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


def _as_argv(argv: Sequence) -> list[str]:
    """``argv`` as strings: paths and numbers are accepted as items; a single string is refused (it would be
    split into characters)."""
    if isinstance(argv, str | bytes):
        raise TypeError(
            f"expected a list of arguments such as ['--config', 'configs/tiny.yaml'], got the string {argv!r} "
            "(split a command line with shlex.split)"
        )
    out = []
    for item in argv:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, os.PathLike | int | float):
            out.append(os.fspath(item) if isinstance(item, os.PathLike) else str(item))
        else:
            raise TypeError(f"argument {item!r}: expected str, a path or a number, got {type(item).__name__}")
    return out


def _split_lr_multipliers(argv: list[str]) -> tuple[list[str], dict]:
    """``--train.lr_multipliers.DOTTED.MODULE V`` arguments (their keys are dotted module paths, which
    jsonargparse would read as nesting) taken out of ``argv`` → (the other arguments, {module: value})."""
    multipliers = {}
    kept = []
    i = 0
    while i < len(argv):
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
    return kept, multipliers


def _command_line_trainer_keys(argv: list[str]) -> set[str]:
    """The Trainer arguments written as ``--trainer.KEY`` (or ``--trainer.KEY=V``) in ``argv``."""
    prefix = "--trainer."
    return {a.split("=", 1)[0][len(prefix) :].split(".", 1)[0] for a in argv if a.startswith(prefix)}


def parse_fit_args(argv: Sequence, mode: str = "fit") -> FitArgs:
    """``vidllm <mode>`` arguments → :class:`FitArgs`: the validated :class:`VidLLMConfig`, the Trainer
    arguments given and the resolved command (YAML).

    ``--help`` and ``--print_config`` print and raise ``SystemExit(0)``; a bad argument is a one-line
    :class:`ConfigError` that names it."""
    if mode not in MODES:
        raise ConfigError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    kept, multipliers = _split_lr_multipliers(_as_argv(argv))
    parser = build_parser(mode)
    rewritten = _rewrite_argv(kept)
    try:
        ns = parser.parse_args(rewritten)
    except argparse.ArgumentError as err:
        raise ConfigError(" ".join(str(err).split())) from None
    model = ns.model.as_dict()
    if multipliers:
        model["train"]["lr_multipliers"] = {**(model["train"].get("lr_multipliers") or {}), **multipliers}
    cfg = config_from_dict(model, source="command-line arguments")
    defaults = parser.get_defaults().trainer.as_dict()
    explicit = _command_line_trainer_keys(rewritten)
    given = {k: v for k, v in ns.trainer.as_dict().items() if k in explicit or v != defaults.get(k)}
    resolved = {k: v for k, v in ns.as_dict().items() if k not in ("config", "__path__")}
    resolved["model"] = dataclasses.asdict(cfg)
    return FitArgs(
        mode=mode,
        cfg=cfg,
        out=ns.out,
        ckpt_path=ns.ckpt_path,
        seed=ns.seed,
        trainer_config=ns.trainer_config,
        trainer_defaults={k: v for k, v in defaults.items() if k in TRAINER_STATICS},
        trainer=given,
        cli_config=yaml.safe_dump(resolved, sort_keys=False),
    )


def resolve_config(config_path: str, stage: int | None, pairs: dict[str, str]) -> VidLLMConfig:
    """Model config → stage defaults (the shipped ``stage<N>.yaml``; missing is an error) → ``--KEY VALUE``
    overrides, through the parser of ``vidllm fit`` (:func:`parse_fit_args`)."""
    argv = ["--config", str(config_path), *(["--stage", str(stage)] if stage else [])]
    for key, value in pairs.items():
        argv += [f"--{key}", str(value)]
    return parse_fit_args(argv).cfg
