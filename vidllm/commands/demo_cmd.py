"""``vidllm demo``: the embedded default run — synthetic scenes → teachers → stage 1 → stage 2 →
evaluation → export → report, on CPU with nothing to download (see :mod:`vidllm.synthetic.demo.pipeline`)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        default="outputs/demo",
        help="output directory (data, teachers, runs, evaluation, report.md, summary.json)",
    )
    parser.add_argument(
        "--scenes",
        type=int,
        default=None,
        help="synthetic scenes to generate (default: configs/demo.yaml's data.synthetic_scenes)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=12.0,
        help="training budget in minutes (teachers + both stages); the whole run takes about this plus 5 minutes and never more than 19.5 x M / 12 minutes (stage 2 stops early at that ceiling)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the teachers and the training")
    parser.add_argument("--config", default=None, help="model config (default: configs/demo.yaml)")
    parser.add_argument("--resume", action="store_true", help="reuse the finished steps of an earlier run in --out")
    parser.add_argument(
        "--semantic-dense-weight",
        type=float,
        default=0.0,
        help="weight of the semantic teacher's dense patch-name term (0 = frame-level CLIP loss only; an ablation, see docs/architecture.md)",
    )
    parser.add_argument(
        "--eval-limit",
        type=int,
        default=None,
        help="evaluate at most this many queries per task (default: all held-out ones)",
    )


def run(args: argparse.Namespace) -> int:
    from vidllm.synthetic.demo.pipeline import run_demo
    from vidllm.synthetic.demo.settings import DemoSettings

    settings = DemoSettings(
        out=args.out,
        config=args.config,
        scenes=args.scenes,
        minutes=args.minutes,
        seed=args.seed,
        eval_limit=args.eval_limit,
        resume=args.resume,
        semantic_dense_weight=args.semantic_dense_weight,
    )
    run_demo(settings)
    return 0
