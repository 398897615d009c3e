"""Lightning training and evaluation of either stage from a ``vidllm fit`` argument list: :func:`fit` is the one
path behind the ``vidllm fit|validate|test|predict`` commands and the demo, and what to call from Python::

    from vidllm.training.fit import fit

    result = fit(["--stage", "1", "--config", "configs/tiny.yaml", "--trainer.max_steps", "20"])
    result.model_dir  # outputs/stage1/model, loadable with VidLLM.from_pretrained

The arguments are those of the command line (:mod:`vidllm.training.fit_args`), so ``"vidllm fit " +
shlex.join(argv)`` reruns the same run from a shell.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidllm.config import VidLLMConfig, save_config
from vidllm.errors import CheckpointError, ConfigError
from vidllm.io import atomic_write
from vidllm.training.fit_args import FitArgs, parse_fit_args

__all__ = ["FitResult", "fit", "run_fit", "trainer_arguments", "default_trainer_kwargs", "quiet_known_warnings"]


@dataclass
class FitResult:
    """What one :func:`fit` run did."""

    mode: str
    """'fit', 'validate', 'test' or 'predict'."""
    stage: int
    """Training stage of the run's config (1 or 2)."""
    out: Path
    """Run directory (``config.yaml``, ``cli_config.yaml``, logs, ``checkpoints/``)."""
    global_step: int
    """Optimiser steps the trainer has taken (after a resume: counted from the start of the first run)."""
    model_dir: Path | None
    """``<out>/model`` (``save_pretrained`` layout, written by global rank 0) after ``fit``; None otherwise."""
    results: Any
    """What ``Trainer.validate``/``test``/``predict`` returned (a list per dataloader); None after ``fit``."""
    metrics: dict[str, float]
    """The trainer's last logged values (``Trainer.callback_metrics``) as floats."""
    trainer: Any
    """The ``lightning.Trainer`` of the run."""
    module: Any
    """The :class:`~vidllm.training.module.VidLLMModule` (``.model`` is the trained :class:`~vidllm.model.VidLLM`)."""


def fit(argv: Sequence, mode: str = "fit") -> FitResult:
    """Run ``vidllm <mode> ARGV`` in this process: parse ``argv`` (a list of strings; paths and numbers are
    accepted as items) with the command's parser, then train / validate / test / predict.

    ``--help`` and ``--print_config`` print and raise ``SystemExit(0)``; a bad argument raises
    :class:`ConfigError` naming it, a bad checkpoint :class:`CheckpointError`."""
    return run_fit(parse_fit_args(argv, mode))


def default_trainer_kwargs(cfg: VidLLMConfig, out: Path) -> dict:
    """The Trainer arguments of every run before any setting: CSV + TensorBoard loggers and checkpoints under
    ``out`` (``last.ckpt``, every quarter of ``train.max_steps``, at most every 500 steps), the config's steps and
    gradient clipping, bf16 on a bf16-capable GPU, atomic checkpoint writes."""
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


def quiet_known_warnings() -> None:
    """Silence third-party deprecation chatter that says nothing about the user's run."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*is deprecated.*")


def _looks_like_torch_file(path: Path) -> bool:
    """A complete ``torch.save`` file: a zip archive (the default format) or a legacy pickle stream."""
    import zipfile

    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as handle:
        return handle.read(1) == b"\x80"


def _checkpoint(ckpt: str | None, out: Path) -> str | None:
    """``--ckpt_path``, checked before any data generation or model building ('last' → ``<out>/checkpoints/last.ckpt``)."""
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
    return ckpt


def trainer_arguments(args: FitArgs, out: Path) -> dict:
    """The ``lightning.Trainer`` keyword arguments of a run, later layers winning: :func:`default_trainer_kwargs`
    → the parser's defaults (``devices``, ``precision`` ...) → ``--trainer_config`` → the ``--trainer.*``
    arguments given (:attr:`FitArgs.trainer`). ``max_steps`` / ``gradient_clip_val`` left null are the config's
    ``train.max_steps`` / ``train.grad_clip``; a ``strategy: {name, args}`` becomes the Lightning strategy."""
    from vidllm.training.strategies import build_strategy, read_trainer_config

    cfg = args.cfg
    kwargs = {**default_trainer_kwargs(cfg, out), **args.trainer_defaults}
    if args.trainer_config:
        kwargs.update(read_trainer_config(args.trainer_config))
    kwargs.update(args.trainer)
    if kwargs.get("max_steps") is None:
        kwargs["max_steps"] = cfg.train.max_steps
    if kwargs.get("gradient_clip_val") is None:
        kwargs["gradient_clip_val"] = cfg.train.grad_clip
    if "strategy" in kwargs:
        kwargs["strategy"] = build_strategy(kwargs["strategy"])
    return kwargs


def run_fit(args: FitArgs) -> FitResult:
    """Run parsed arguments (:func:`~vidllm.training.fit_args.parse_fit_args`); :func:`fit` is both steps."""
    import lightning as L

    quiet_known_warnings()
    from vidllm.data.datamodule import VidLLMDataModule, ensure_synthetic
    from vidllm.training.missing_teachers import ensure_teachers, teachers_to_build
    from vidllm.training.module import VidLLMModule
    from vidllm.training.paths import check_checkpoints

    mode = args.mode
    cfg = args.cfg
    out = Path(args.out or f"outputs/stage{cfg.train.stage}")
    ckpt = _checkpoint(args.ckpt_path, out)
    check_checkpoints(cfg, will_create=tuple(teachers_to_build(cfg)))
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.train.seed if args.seed is None else args.seed, workers=True, verbose=False)
    trainer_kwargs = trainer_arguments(args, out)
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
    results = None
    try:
        if mode == "fit":
            trainer.fit(module, **kwargs)
        elif mode == "validate":
            results = trainer.validate(module, **kwargs)
        elif mode == "test":
            results = trainer.test(module, **kwargs)
        else:
            results = trainer.predict(module, **kwargs)
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
        from vidllm.evaluation.outputs import write_json

        # how far training got: a run can end before max_steps (--trainer.max_time, max_epochs)
        write_json(
            out / "model" / "fit_state.json",
            {"global_step": int(trainer.global_step), "max_steps": int(trainer.max_steps), "stage": cfg.train.stage},
        )
        print(f"vidllm fit: saved the trained model to {out / 'model'} after {trainer.global_step} steps", flush=True)
    return FitResult(
        mode=mode,
        stage=cfg.train.stage,
        out=out,
        global_step=int(trainer.global_step),
        model_dir=out / "model" if mode == "fit" else None,
        results=results,
        metrics={k: float(v) for k, v in trainer.callback_metrics.items()},
        trainer=trainer,
        module=module,
    )
