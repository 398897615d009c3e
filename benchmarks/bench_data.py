"""Data pipeline throughput: synthetic scenes/s of the generator and clips/s of the dataset and loaders.

    python benchmarks/bench_data.py --config configs/tiny.yaml --out outputs/bench/data.json
    python benchmarks/bench_data.py --quick --out /tmp/data.json             # seconds

* ``generator`` — :func:`vidllm.synthetic.world.generate_dataset` of ``--scenes`` scenes
  (``--gen-workers`` processes; 1 by default so the figure is per core): scenes/s and frames/s.
* ``dataset`` — :class:`vidllm.data.dataset.VidLLMDataset` ``__getitem__`` in this process
  (decode JPEG/PNG, resize/crop, poses, targets): clips/s over ``--clips`` items after warm-up.
* ``loader_w0`` / ``loader_w2`` — the DataModule's training DataLoader (weighted task sampler,
  padded collate) with 0 and 2 workers: clips/s over ``--batches`` batches after the first, plus
  the time to the first batch (worker start-up). With workers, data loading overlaps compute in
  training; on a machine with 2 cores the two workers compete with this process.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import ROOT, machine_info, print_table, write_json  # noqa: E402


def bench_generator(root: Path, scenes: int, frames: int, width: int, height: int, workers: int) -> dict:
    from vidllm.synthetic.world import SynthParams, generate_dataset

    params = SynthParams(
        num_frames=frames,
        width=width,
        height=height,
        depth_width=max(14, round(width * 5 / 7)),
        depth_height=max(14, round(height * 5 / 7)),
    )
    start = time.perf_counter()
    generate_dataset(root, scenes, seed=0, params=params, workers=workers)
    elapsed = time.perf_counter() - start
    return {
        "name": "generator",
        "items": scenes,
        "seconds": elapsed,
        "scenes_per_s": scenes / elapsed,
        "frames_per_s": scenes * frames / elapsed,
        "frames_per_scene": frames,
        "image_wh": [width, height],
        "workers": workers,
    }


def bench_dataset(cfg, clips: int, warmup: int) -> dict:
    from vidllm.data.dataset import VidLLMDataset

    ds = VidLLMDataset(cfg, "train", deterministic=False)
    order = list(itertools.islice(itertools.cycle(range(len(ds))), warmup + clips))
    for i in order[:warmup]:
        ds[i]
    start = time.perf_counter()
    for i in order[warmup:]:
        item = ds[i]
    elapsed = time.perf_counter() - start
    return {
        "name": "dataset",
        "items": clips,
        "seconds": elapsed,
        "clips_per_s": clips / elapsed,
        "frames": int(item["images"].shape[0]),
        "image_hw": list(item["images"].shape[-2:]),
        "workers": 0,
    }


def bench_loader(cfg, workers: int, batches: int) -> dict:
    from vidllm.data.datamodule import VidLLMDataModule

    dm = VidLLMDataModule(dataclasses.replace(cfg, num_workers=workers))
    start = time.perf_counter()
    it = iter(dm.train_dataloader())
    batch = next(it)
    first = time.perf_counter() - start
    size = batch["images"].shape[0]
    count, start = 0, time.perf_counter()
    while count < batches:
        try:
            batch = next(it)
        except StopIteration:  # epoch boundary: a new iterator (workers persist)
            it = iter(dm.train_dataloader())
            continue
        count += batch["images"].shape[0]
    elapsed = time.perf_counter() - start
    del it
    return {
        "name": f"loader_w{workers}",
        "items": count,
        "seconds": elapsed,
        "clips_per_s": count / elapsed,
        "first_batch_s": first,
        "batch_size": size,
        "workers": workers,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(ROOT / "configs" / "tiny.yaml"), help="config YAML (its data section)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="dotted config override key=value (repeatable)"
    )
    parser.add_argument("--scenes", type=int, default=4, help="synthetic scenes to generate")
    parser.add_argument("--scene-frames", type=int, default=32, help="frames rendered per synthetic scene")
    parser.add_argument("--scene-size", default="224x168", help="synthetic colour frame WxH")
    parser.add_argument("--gen-workers", type=int, default=1, help="generator processes")
    parser.add_argument("--clips", type=int, default=20, help="dataset items timed")
    parser.add_argument("--batches", type=int, default=80, help="clips timed per loader (after the first batch)")
    parser.add_argument("--workers", default="0,2", help="loader worker counts")
    parser.add_argument(
        "--data-root", default=None, help="use scenes already here instead of generating (generator not timed)"
    )
    parser.add_argument("--quick", action="store_true", help="2 scenes of 8 frames of 112×84, a few clips")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    from vidllm.config import load_config

    if args.quick:
        args.scenes, args.scene_frames, args.scene_size, args.clips, args.batches = 2, 8, "112x84", 4, 4
    width, height = (int(v) for v in args.scene_size.lower().split("x"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidllm-bench-data-") as tmp:
        root = Path(args.data_root) if args.data_root else Path(tmp) / "synthetic"
        if not args.data_root:
            rows.append(bench_generator(root, args.scenes, args.scene_frames, width, height, args.gen_workers))
        cfg = load_config(args.config, [f"data.root={root}", *args.overrides]).data
        if not args.data_root and cfg.num_frames > args.scene_frames:
            cfg = dataclasses.replace(cfg, num_frames=args.scene_frames)
        rows.append(bench_dataset(cfg, args.clips, warmup=1))
        for w in (int(v) for v in args.workers.split(",")):
            rows.append(bench_loader(cfg, w, args.batches))
    for r in rows:
        r["rate"] = r.get("scenes_per_s", r.get("clips_per_s"))
        r["unit"] = "scenes/s" if "scenes_per_s" in r else "clips/s"
    print_table(
        rows,
        [
            ("name", "what", "{}"),
            ("items", "items", "{}"),
            ("seconds", "s", "{:.2f}"),
            ("rate", "rate", "{:.2f}"),
            ("unit", "unit", "{}"),
            ("first_batch_s", "first batch s", "{:.2f}"),
        ],
    )
    meta = {
        **machine_info(),
        "config": str(args.config),
        "overrides": args.overrides,
        "num_frames": cfg.num_frames,
        "image_size": cfg.image_size,
    }
    write_json(args.out, {"meta": meta, "results": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
