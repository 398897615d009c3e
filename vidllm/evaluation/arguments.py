"""The options every ``vidllm eval`` task shares (checkpoint, data, split, output, device)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_eval_arguments"]


def add_eval_arguments(parser: argparse.ArgumentParser, proposals: bool = False) -> None:
    """Add ``--checkpoint --data --split --limit --batch-size --out --device --dtype --frames --quiet`` to ``parser``,
    and ``--proposals`` when the task takes proposal boxes (ScanRefer, Scan2Cap)."""
    parser.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        help="model directory written by save_pretrained / vidllm fit (<run>/model)",
    )
    parser.add_argument(
        "--data",
        required=True,
        type=Path,
        help="data root: <data>/scans/<scene_id>/, <data>/annotations/, <data>/splits/",
    )
    parser.add_argument(
        "--split",
        default="val",
        help="split name (split list <data>/splits/<split>.txt and the annotation files of that split)",
    )
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N queries / scenes")
    parser.add_argument("--batch-size", type=int, default=8, help="queries per language-model forward")
    parser.add_argument("--out", required=True, type=Path, help="output directory (predictions.json, metrics.json)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", default=None, help="compute dtype, e.g. bfloat16 on GPU (default float32)")
    parser.add_argument(
        "--frames", type=int, default=None, help="frames per clip (default: the model config's data.num_frames)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    if proposals:
        parser.add_argument(
            "--proposals",
            default="gt",
            help="'gt' (GT object boxes), 'none' (box regression) or a directory of <scene_id>.npy [Q, 6] AABBs",
        )
