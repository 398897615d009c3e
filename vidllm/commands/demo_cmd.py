"""``vidllm demo``: the embedded default run (synthetic scenes → teachers → stage 1 → stage 2 → evaluation).

The end-to-end pipeline lands with the demo issue; until then this command says so clearly
and lists what already works.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs/demo", help="output directory")
    parser.add_argument("--scenes", type=int, default=None, help="synthetic scenes to generate")
    parser.add_argument("--minutes", type=float, default=None, help="training budget in minutes")
    parser.add_argument("--seed", type=int, default=0, help="random seed")


def run(args: argparse.Namespace) -> int:
    print(
        "vidllm demo: not yet available in this version — the end-to-end demo (synthetic scenes, "
        "teachers, two-stage training, evaluation, report) is still being built.\n"
        "What works now: `vidllm config configs/tiny.yaml` (typed configs), `vidllm --help`, and the "
        "test suite (`pytest`).",
        file=sys.stderr,
    )
    return 0
