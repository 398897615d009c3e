"""``vidllm teachers``: train the tiny stage-1 teachers on synthetic scenes.

Writes ``<out>/geometry/model.pt`` (+ ``meta.json``) — a VGGT-layout checkpoint of a tiny
reconstruction model trained on GT depth and poses — and ``<out>/semantic/`` — a tiny CLIP-style
model trained contrastively on frames and the names of the objects they show. Both report their
held-out figures next to their untrained starting point. The model sizes come from ``--config``
(the student's encoder and reconstruction branch); every training setting is an option
(``--geometry-steps``, ``--clip-frames`` ... : the fields of :class:`~vidllm.synthetic.tiny_teachers.teacher_config.TeacherTrainConfig`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vidllm.synthetic.tiny_teachers.teacher_config import TeacherTrainConfig


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


TYPES = {"int": int, "float": float, "str": str, "bool": _bool}
"""Option types of the :class:`~vidllm.synthetic.tiny_teachers.teacher_config.TeacherTrainConfig` field annotations."""


def attribute_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (the string literal after each field), whitespace-collapsed."""
    import ast
    import inspect

    try:
        body = ast.parse(inspect.getsource(cls)).body[0].body
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vidllm.synthetic.tiny_teachers.teacher_config import TeacherTrainConfig

    parser.add_argument(
        "--config",
        default="configs/tiny.yaml",
        help="student model config (sizes of the geometry teacher, data settings)",
    )
    parser.add_argument(
        "--data", default=None, help="synthetic dataset root (default: data.root of the config; generated when empty)"
    )
    parser.add_argument("--out", default="outputs/teachers", help="output directory")
    parser.add_argument("--steps", type=int, default=None, help="most steps of each teacher (both --*-steps)")
    parser.add_argument(
        "--minutes", type=float, default=None, help="time budget of each teacher in minutes (both --*-minutes)"
    )
    docs = attribute_docs(TeacherTrainConfig)
    for f in dataclasses.fields(TeacherTrainConfig):
        parser.add_argument(
            _option(f.name),
            dest=f.name,
            type=TYPES[str(f.type)],
            default=None,
            help=f"{docs.get(f.name, '')} (default {f.default})".replace("%", "%%"),
        )


def teacher_config(args: argparse.Namespace) -> TeacherTrainConfig:
    """The teacher settings of parsed arguments: defaults ← ``--steps`` / ``--minutes`` (both teachers) ←
    each field's own option."""
    from vidllm.synthetic.tiny_teachers.teacher_config import TeacherTrainConfig

    overrides = {}
    if args.steps is not None:
        overrides.update(geometry_steps=args.steps, semantic_steps=args.steps)
    if args.minutes is not None:
        overrides.update(geometry_minutes=args.minutes, semantic_minutes=args.minutes)
    for f in dataclasses.fields(TeacherTrainConfig):
        if getattr(args, f.name, None) is not None:
            overrides[f.name] = getattr(args, f.name)
    return TeacherTrainConfig(**overrides)


def teachers_argv(config: str | os.PathLike, out: str | os.PathLike, tcfg: TeacherTrainConfig) -> list[str]:
    """The ``vidllm teachers`` arguments that train with ``tcfg`` (the seed and every setting that is not
    its default) on ``config`` into ``out`` — the inverse of :func:`teacher_config`."""
    from vidllm.synthetic.tiny_teachers.teacher_config import TeacherTrainConfig

    default = TeacherTrainConfig()
    argv = ["--config", os.fspath(config), "--out", os.fspath(out)]
    for f in dataclasses.fields(TeacherTrainConfig):
        value = getattr(tcfg, f.name)
        if f.name == "seed" or value != getattr(default, f.name):
            argv += [_option(f.name), str(value)]
    return argv


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``vidllm teachers`` (:func:`add_arguments`)."""
    parser = argparse.ArgumentParser(prog="vidllm teachers", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from vidllm.synthetic.tiny_teachers.build import build_teachers

    paths = build_teachers(args.config, args.out, args.data, teacher_config(args))
    print(f"vidllm teachers: geometry teacher {paths['geometry']}, semantic teacher {paths['semantic']}")
    return 0
