"""Arguments and error handling shared by the ``tools/eval_*.py`` scripts."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from vidllm.errors import VidLLMError

__all__ = ["eval_parser", "load_pipeline_and_clips", "run_tool"]


def eval_parser(description: str, proposals: bool = False) -> argparse.ArgumentParser:
    """The common options: ``--checkpoint --data --split --limit --batch-size --out --device --frames``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        help="model directory written by save_pretrained / vidllm fit (<run>/model)",
    )
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        help="data root: <data>/scans/<scene_id>/, <data>/annotations/, <data>/splits/",
    )
    p.add_argument(
        "--split",
        default="val",
        help="split name (split list <data>/splits/<split>.txt and the annotation files of that split)",
    )
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N queries / scenes")
    p.add_argument("--batch-size", type=int, default=8, help="queries per language-model forward")
    p.add_argument("--out", required=True, type=Path, help="output directory (predictions.json, metrics.json)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--dtype", default=None, help="compute dtype, e.g. bfloat16 on GPU (default float32)")
    p.add_argument(
        "--frames", type=int, default=None, help="frames per clip (default: the model config's data.num_frames)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    if proposals:
        p.add_argument(
            "--proposals",
            default="gt",
            help="'gt' (GT object boxes), 'none' (box regression) or a directory of <scene_id>.npy [Q, 6] AABBs",
        )
    return p


def load_pipeline_and_clips(args: argparse.Namespace, tasks: list[str], grounding_source: str | None = None):
    """``VidLLMPipeline.from_pretrained(args.checkpoint)`` (device ``args.device``, compute dtype ``args.dtype``) and the
    :class:`SceneClips` of ``args.split``."""
    import dataclasses

    from vidllm.api import VidLLMPipeline
    from vidllm.evaluation.clips import SceneClips, eval_data_config

    if not args.checkpoint.is_dir():
        raise VidLLMError(
            f"--checkpoint {args.checkpoint}: not a model directory (expected config.yaml + model.safetensors)"
        )
    pipeline = VidLLMPipeline.from_pretrained(args.checkpoint, device=args.device, dtype=args.dtype)
    cfg = eval_data_config(pipeline.config.data, args.data, args.frames)
    if grounding_source:
        cfg = dataclasses.replace(cfg, grounding_source=grounding_source)
    return pipeline, SceneClips(cfg, args.split, tasks)


def run_tool(name: str, body: Callable[[], int], debug: bool = False) -> int:
    """Run a tool's body: package errors and clear OS/value errors become one line and exit code 1."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    start = time.perf_counter()
    if debug or "--debug" in sys.argv:
        return body()
    try:
        code = body()
    except (VidLLMError, OSError, ValueError, KeyError) as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return 1
    print(f"{name}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return code
