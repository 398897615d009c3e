"""The argument lists of the demo's steps and the commands the report shows for them.

Each list is built once: the step runs it (``vidllm fit``, ``vidllm teachers``) or runs on the same values
(``vidllm synth``'s generator settings, ``vidllm eval``'s options), and the report shows
``shlex.join`` of it, so a reported command is exactly what ran.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from vidllm.config import DataConfig

__all__ = ["command_line", "fit_argv", "synth_command_argv", "eval_argvs", "EVAL_BATCH_SIZE", "EVAL_SPLIT"]

EVAL_BATCH_SIZE = 16
"""Queries per language-model forward in the demo's evaluation (``--batch-size`` of ``vidllm eval``)."""
EVAL_SPLIT = "val"
"""The held-out split the demo evaluates."""


def command_line(program: str, argv: Sequence[str]) -> str:
    """``program`` followed by ``argv`` quoted for a POSIX shell: ``shlex.split`` gives the list back."""
    return f"{program} {shlex.join(argv)}"


def fit_argv(
    config: str | os.PathLike, stage: int, out: str | os.PathLike, steps: int, seed: int, extra: Sequence[str] = ()
) -> list[str]:
    """``vidllm fit`` arguments of a demo stage: ``steps`` optimiser steps (Trainer and config alike, so the
    learning-rate schedule spans them), a loss row every 5 steps, then ``extra``."""
    return [
        "--stage",
        str(stage),
        "--config",
        os.fspath(config),
        "--out",
        os.fspath(out),
        "--seed",
        str(seed),
        "--trainer.max_steps",
        str(steps),
        "--train.max_steps",
        str(steps),
        "--trainer.log_every_n_steps",
        "5",
        *extra,
    ]


def synth_command_argv(data: DataConfig) -> list[str]:
    """The ``vidllm synth`` arguments that generate what :func:`~vidllm.data.datamodule.ensure_synthetic`
    generates for ``data`` (its scenes, seed and :func:`~vidllm.data.datamodule.synthetic_params`)."""
    from vidllm.commands.synth_cmd import synth_argv
    from vidllm.data.datamodule import synthetic_params

    return synth_argv(data.root, data.synthetic_scenes, data.seed, synthetic_params(data))


def eval_argvs(
    model_dir: str | os.PathLike, data_root: str | os.PathLike, out: str | os.PathLike, limit: int | None
) -> dict[str, list[str]]:
    """Evaluation task → ``["eval", TASK, *options]``: the ``vidllm eval`` run that writes ``<out>/<task>`` as
    the demo's evaluation does (``limit`` queries per grounding / QA task; reconstruction on every scene)."""
    out = Path(out)
    common = ["--checkpoint", os.fspath(model_dir), "--data", os.fspath(data_root), "--split", EVAL_SPLIT]
    limited = [] if limit is None else ["--limit", str(limit)]
    batch = ["--batch-size", str(EVAL_BATCH_SIZE)]
    argvs = {
        f"scanrefer_{p}": ["eval", "scanrefer", *common, "--proposals", p, *batch, *limited] for p in ("gt", "none")
    }
    argvs["scanqa"] = ["eval", "scanqa", *common, "--no-captions", *batch, *limited]
    argvs["recon"] = ["eval", "recon", *common]
    return {task: [*argv, "--out", str(out / task)] for task, argv in argvs.items()}
