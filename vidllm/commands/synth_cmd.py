"""``vidllm synth``: generate synthetic scenes in the real ScanNet / ScanRefer / ScanQA / SQA3D /
Multi3DRefer formats (layout: see :mod:`vidllm.data.synthetic`)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import get_args

from vidllm.config import SyntheticTrajectory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, help="output directory (scans/, annotations/, splits/ are written under it)"
    )
    parser.add_argument("--scenes", type=int, default=50, help="number of scenes")
    parser.add_argument("--seed", type=int, default=0, help="random seed (each scene is a function of seed and index)")
    parser.add_argument("--frames", type=int, default=32, help="frames per scene")
    parser.add_argument("--width", type=int, default=224, help="colour frame width")
    parser.add_argument("--height", type=int, default=168, help="colour frame height")
    parser.add_argument("--depth-width", type=int, default=None, help="depth frame width (default 5/7 of --width)")
    parser.add_argument("--depth-height", type=int, default=None, help="depth frame height (default 5/7 of --height)")
    parser.add_argument(
        "--trajectory",
        choices=get_args(SyntheticTrajectory),
        default="loop",
        help="camera path: 'loop' (360° sweep, per-frame jitter) or 'walk' (smooth hand-held walk, as in vidllm demo)",
    )
    parser.add_argument("--arc-degrees", type=float, default=120.0, help="arc of the 'walk' trajectory in degrees")
    parser.add_argument("--hfov", type=float, default=70.0, help="horizontal field of view of the camera in degrees")
    parser.add_argument(
        "--clip-frames",
        type=int,
        default=8,
        help="frames of the model's uniform clip (data.num_frames): language is generated only about objects visible in them",
    )
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")
    parser.add_argument("--force", action="store_true", help="write into a non-empty --out")


def run(args: argparse.Namespace) -> int:
    from vidllm.data.synthetic import SynthParams, generate_dataset

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise ValueError(f"--out {out} is not empty; pass --force to write into it")
    params = SynthParams(
        num_frames=args.frames,
        width=args.width,
        height=args.height,
        depth_width=args.depth_width or max(14, round(args.width * 5 / 7)),
        depth_height=args.depth_height or max(14, round(args.height * 5 / 7)),
        trajectory=args.trajectory,
        arc_degrees=args.arc_degrees,
        hfov_deg=args.hfov,
        clip_frames=args.clip_frames,
    )
    # Generate beside --out, then move into place: a kill mid-way never leaves half-written scenes.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        info = generate_dataset(tmp, args.scenes, seed=args.seed, params=params, workers=args.workers)
        _move_into(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"wrote {info['num_scenes']} scenes ({params.num_frames} frames of {params.width}x{params.height}) to {out} in {info['seconds']:.1f} s",
        file=sys.stderr,
    )
    return 0


def _move_into(src: Path, dst: Path) -> None:
    """Move the generated tree ``src`` onto ``dst``: a rename when ``dst`` is missing or empty, else
    entry by entry (files and second-level folders such as ``scans/<scene>`` replaced whole)."""
    if not dst.exists() or (dst.is_dir() and not any(dst.iterdir())):
        if dst.exists():
            dst.rmdir()
        os.replace(src, dst)
        return
    for entry in sorted(src.iterdir(), key=lambda p: p.name == "synthetic_info.json"):  # the marker file last
        target = dst / entry.name
        if entry.is_dir():
            target.mkdir(exist_ok=True)
            for child in entry.iterdir():
                if (target / child.name).is_dir():
                    shutil.rmtree(target / child.name)
                os.replace(child, target / child.name)
        else:
            os.replace(entry, target)
