"""``vidllm synth``: generate synthetic scenes in the real ScanNet / ScanRefer / ScanQA / SQA3D /
Multi3DRefer formats (layout: see :mod:`vidllm.synthetic.world`)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from vidllm.config import SyntheticTrajectory

if TYPE_CHECKING:
    from vidllm.synthetic.world import SynthParams


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


def _depth_size(width: int, height: int) -> tuple[int, int]:
    """The default depth frame size: 5/7 of the colour size (at least 14 px)."""
    return max(14, round(width * 5 / 7)), max(14, round(height * 5 / 7))


def synth_params(args: argparse.Namespace) -> SynthParams:
    """The generator settings of parsed ``vidllm synth`` arguments."""
    from vidllm.synthetic.world import SynthParams

    depth_width, depth_height = _depth_size(args.width, args.height)
    return SynthParams(
        num_frames=args.frames,
        width=args.width,
        height=args.height,
        depth_width=args.depth_width or depth_width,
        depth_height=args.depth_height or depth_height,
        trajectory=args.trajectory,
        arc_degrees=args.arc_degrees,
        hfov_deg=args.hfov,
        clip_frames=args.clip_frames,
    )


UNEXPOSED = (
    "invalid_pose_frames",
    "min_objects",
    "max_objects",
    "jpeg_quality",
    "visible_min_fraction",
    "visible_min_frames",
)
"""SynthParams fields ``vidllm synth`` has no option for (always their defaults)."""


def synth_argv(out: str | os.PathLike, scenes: int, seed: int, params: SynthParams) -> list[str]:
    """The ``vidllm synth`` arguments that generate ``scenes`` scenes with ``params`` and ``seed`` into ``out``
    (the inverse of :func:`synth_params`); ValueError for a setting the command cannot express."""
    from vidllm.synthetic.world import SynthParams

    default = SynthParams()
    for name in UNEXPOSED:
        if getattr(params, name) != getattr(default, name):
            raise ValueError(
                f"SynthParams.{name} = {getattr(params, name)!r}: vidllm synth has no option for it "
                f"(it always uses {getattr(default, name)!r})"
            )
    argv = ["--out", os.fspath(out), "--scenes", str(scenes), "--seed", str(seed)]
    argv += ["--frames", str(params.num_frames), "--width", str(params.width), "--height", str(params.height)]
    if (params.depth_width, params.depth_height) != _depth_size(params.width, params.height):
        argv += ["--depth-width", str(params.depth_width), "--depth-height", str(params.depth_height)]
    argv += ["--trajectory", params.trajectory, "--arc-degrees", str(params.arc_degrees)]
    return argv + ["--hfov", str(params.hfov_deg), "--clip-frames", str(params.clip_frames)]


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``vidllm synth`` (:func:`add_arguments`)."""
    parser = argparse.ArgumentParser(prog="vidllm synth", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from vidllm.synthetic.world import generate_dataset

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise ValueError(f"--out {out} is not empty; pass --force to write into it")
    params = synth_params(args)
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
