"""``vidllm teachers``: train the tiny stage-1 teachers on synthetic scenes.

Writes ``<out>/geometry/model.pt`` (+ ``meta.json``) — a VGGT-layout checkpoint of a tiny
reconstruction model trained on GT depth and poses — and ``<out>/semantic/`` — a tiny CLIP-style
model trained contrastively on frames and the names of the objects they show. Both report their
held-out figures next to their untrained starting point. The model sizes come from ``--config``
(the student's encoder and reconstruction branch).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default="configs/tiny.yaml",
        help="student model config (sizes of the geometry teacher, data settings)",
    )
    parser.add_argument(
        "--data", default=None, help="synthetic dataset root (default: data.root of the config; generated when empty)"
    )
    parser.add_argument("--out", default="outputs/teachers", help="output directory")
    parser.add_argument("--steps", type=int, default=None, help="most steps of each teacher")
    parser.add_argument("--minutes", type=float, default=None, help="time budget of each teacher in minutes")
    parser.add_argument("--seed", type=int, default=0, help="seed")
    parser.add_argument(
        "--semantic-dense-weight",
        type=float,
        default=0.0,
        help="weight of the semantic teacher's dense patch–name term (0 = frame-level CLIP loss only)",
    )


def run(args: argparse.Namespace) -> int:
    from vidllm.teachers.build import build_teachers
    from vidllm.teachers.config import TeacherTrainConfig

    overrides = {"seed": args.seed, "semantic_dense_weight": args.semantic_dense_weight}
    if args.steps is not None:
        overrides.update(geometry_steps=args.steps, semantic_steps=args.steps)
    if args.minutes is not None:
        overrides.update(geometry_minutes=args.minutes, semantic_minutes=args.minutes)
    paths = build_teachers(args.config, args.out, args.data, TeacherTrainConfig(**overrides))
    print(f"vidllm teachers: geometry teacher {paths['geometry']}, semantic teacher {paths['semantic']}")
    return 0
