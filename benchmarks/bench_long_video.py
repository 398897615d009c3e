"""Long videos: accuracy, time and memory of one full forward against chunked reconstruction (Sim(3)-aligned chunks).

    python benchmarks/bench_long_video.py --checkpoint outputs/demo/stage2/model --data /tmp/longvid/data256 \\
        --frames 64,256 --modes full,32/8,16/4,32/8/anchored,16/4/anchored --threads 1 \\
        --out benchmarks/results/long_video_cpu.json --markdown benchmarks/results/long_video_cpu.md
    python benchmarks/bench_long_video.py --checkpoint DIR --data DIR --frames 64,256 --modes full,merge0.5,merge0.8
    python benchmarks/bench_long_video.py --checkpoint DIR --data DIR --frames 6 --modes full,4/2 --inprocess  # seconds

``--data`` is a synthetic dataset (``vidllm synth``; use a seed other than the training data's so the
scenes are held out) whose scenes have at least max(``--frames``) frames with valid poses. Modes:

* ``full`` — all S frames in one forward (:meth:`vidllm.api.VidLLMPipeline.forward_geometry`);
* ``C/O`` — :func:`recon.chunked.chunked_forward`: chunks of C consecutive frames, consecutive chunks sharing at
  least O frames, each aligned by Sim(3) to the one before on the shared frames, then one real-scale alignment
  on the whole video;
* ``C/O/anchored`` — the ``anchored`` layout: O anchor frames in every chunk, the other frames dealt out with a
  stride, every chunk aligned to the first on the anchors;
* ``mergeR`` (e.g. ``merge0.8``) — one full forward with training-free token merging in the global blocks:
  the model's config with ``recon.aggregator.global_merge_ratio = R`` (:mod:`recon.layers.token_merge`);
  ``mergeR/plain`` also sets ``recon.aggregator.global_merge_proportional = false``.

For each (mode, S) — in a fresh subprocess (``--inprocess`` to disable) — every scene of ``--split`` gives
one clip of S frames (the model's data settings with ``data.num_frames = S``: uniform over the frames with
valid poses, :class:`vidllm.evaluation.clips.SceneClips`), reconstructed once and scored as
``vidllm/evaluation/reconstruction.py`` scores a forward play:

* **AbsRel** — of ``depth_metric`` (after the model's own real-scale alignment, no per-image fit), pooled
  over the scenes (:func:`vidllm.metrics.recon_metrics.depth_metrics`);
* **RRA@15** — over all frame pairs of every clip (:func:`vidllm.metrics.recon_metrics.pose_metrics`; also RTA@15,
  AUC@30 in the JSON); only the forward play (the evaluation also scores the reversed play);
* **F-score** — at 5 cm after 2 cm voxels against the visible part of the scene mesh, the prediction mapped
  to the world with the clip's GT first pose (:func:`vidllm.evaluation.reconstruction.predicted_world_points`,
  :func:`vidllm.metrics.recon_metrics.pointcloud_metrics`), mean over scenes;
* **time** — wall-clock seconds of the reconstruction of one video (mean over scenes);
* **peak** — the extra resident memory of the reconstruction call beyond weights and input (the RSS
  high-water mark of ``benchmarks/_common.py``; max over scenes), and the process's total RSS high-water
  mark during the call; **frames/GiB** = S / extra peak GiB.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import _status_kib, machine_info, peak_memory, print_table, run_worker, torch_threads, write_json  # noqa: E402

COLUMNS = [
    ("mode", "mode", "{}"),
    ("frames", "frames", "{}"),
    ("scenes", "scenes", "{}"),
    ("abs_rel", "AbsRel", "{:.3f}"),
    ("rra@15", "RRA@15", "{:.3f}"),
    ("fscore", "F-score", "{:.3f}"),
    ("seconds", "s / video", "{:.1f}"),
    ("peak_gib", "extra peak GiB", "{:.2f}"),
    ("process_peak_gib", "process peak GiB", "{:.2f}"),
    ("frames_per_gib", "frames / GiB", "{:.0f}"),
]


MODES_HELP = "'full', CHUNK/OVERLAP[/anchored] such as 32/8 or 32/8/anchored, or mergeR[/plain] such as merge0.8"


def _parse_merge(text: str) -> dict:
    """``mergeR`` or ``mergeR/plain`` → the mode dict of a full forward with token merging at ratio R."""
    ratio_text, _, variant = text[len("merge") :].partition("/")
    try:
        ratio = float(ratio_text)
    except ValueError:
        raise ValueError(f"--modes {text!r}: expected {MODES_HELP}") from None
    if not 0.0 < ratio < 1.0 or variant not in ("", "plain"):
        raise ValueError(f"--modes {text!r}: the merge ratio must be in (0, 1) and the only variant is '/plain'")
    name = f"merge {ratio:g}" + (" plain" if variant else "")
    return {
        "name": name,
        "chunk_size": None,
        "overlap": None,
        "layout": None,
        "merge_ratio": ratio,
        "proportional": not variant,
    }


def parse_mode(text: str) -> dict:
    """``full``, ``C/O``, ``C/O/LAYOUT`` or ``mergeR[/plain]`` → ``{"name", "chunk_size", "overlap", "layout",
    "merge_ratio", "proportional"}`` (chunking keys None for full forwards; ``merge_ratio`` 0 without merging)."""
    from recon.chunked import check_chunking

    text = text.strip()
    if text == "full":
        return {
            "name": "full",
            "chunk_size": None,
            "overlap": None,
            "layout": None,
            "merge_ratio": 0.0,
            "proportional": True,
        }
    if text.startswith("merge"):
        return _parse_merge(text)
    parts = text.split("/")
    try:
        size, overlap = int(parts[0]), int(parts[1])
        layout = parts[2] if len(parts) == 3 else "consecutive"
        if len(parts) not in (2, 3):
            raise ValueError
    except (ValueError, IndexError):
        raise ValueError(f"--modes {text!r}: expected {MODES_HELP}") from None
    check_chunking(size, overlap, layout)
    name = f"chunk {size}/{overlap}" if layout == "consecutive" else f"{layout} {size}/{overlap}"
    return {
        "name": name,
        "chunk_size": size,
        "overlap": overlap,
        "layout": layout,
        "merge_ratio": 0.0,
        "proportional": True,
    }


def set_global_merge(pipeline, ratio: float, proportional: bool = True) -> None:
    """Switch the loaded model's global-block token merging (``recon.aggregator.global_merge_*``; validated)."""
    from dataclasses import replace

    cfg = replace(pipeline.config.recon.aggregator, global_merge_ratio=ratio, global_merge_proportional=proportional)
    pipeline.config.recon.aggregator = cfg
    pipeline.model.aggregator.cfg = cfg


def _runner(pipeline, mode: dict):
    """``[1, S, 3, H, W]`` → the model's geometry output, in ``mode``."""
    from recon.chunked import chunked_forward

    if mode["chunk_size"] is None:
        return pipeline.forward_geometry
    alignment = pipeline.config.metric_depth.alignment
    return lambda images: chunked_forward(
        pipeline.forward_geometry, images, mode["chunk_size"], mode["overlap"], alignment, mode["layout"]
    )


def _scene_clips(model, data: str, frames: int, split: str) -> list:
    from vidllm.evaluation.clips import SceneClips, eval_data_config

    cfg = eval_data_config(model.config.data, data, frames)
    splits = ("train", "val") if split == "all" else (split,)
    return [SceneClips(cfg, s, ["recon"]) for s in splits]


def worker(spec: dict) -> dict:
    """Reconstruct and score every scene for one (mode, S); runs inside the subprocess."""
    with torch_threads(spec.get("threads")):
        return _measure(spec)


def _measured_call(run, images: torch.Tensor, device: torch.device) -> tuple[dict, float, float, str, float]:
    """``run(images)`` once → (output, seconds, extra peak bytes, memory method, process peak bytes)."""
    held: dict = {}

    def call() -> None:
        start = time.perf_counter()
        with torch.no_grad():
            held["out"] = run(images)
        held["seconds"] = time.perf_counter() - start

    extra, method = peak_memory(call, device)
    process_peak = (_status_kib("VmHWM") or 0) * 1024.0 if device.type == "cpu" else float("nan")
    return held["out"], held["seconds"], extra, method, process_peak


def _measure(spec: dict) -> dict:
    from vidllm.api import VidLLMPipeline
    from vidllm.evaluation.reconstruction import predicted_world_points, sample_mesh, visible_mesh_points
    from vidllm.metrics.recon_metrics import depth_metrics, pointcloud_metrics, pose_metrics

    device = torch.device(spec["device"])
    model = VidLLMPipeline.from_pretrained(spec["checkpoint"], device=device)
    mode = parse_mode(spec["mode"])
    set_global_merge(model, mode["merge_ratio"], mode["proportional"])
    run = _runner(model, mode)
    depth_pred, depth_gt, ext_pred, ext_gt, clouds, calls = [], [], [], [], [], []
    for clips in _scene_clips(model, spec["data"], spec["frames"], spec["split"]):
        for scene_id in clips.dataset.scene_ids:
            if spec.get("scenes") and len(calls) >= spec["scenes"]:
                break
            clip = clips.clip(scene_id)
            distinct = len(np.unique(clip["frame_ids"]))
            if distinct < spec["frames"]:  # the sampler would repeat frames
                raise ValueError(
                    f"--data {spec['data']}: scene {scene_id} has {distinct} frames with valid poses, "
                    f"--frames asks for {spec['frames']}"
                )
            out, seconds, extra, method, process_peak = _measured_call(run, clip["images"][None].to(device), device)
            calls.append(
                {
                    "scene_id": scene_id,
                    "seconds": seconds,
                    "peak_bytes": extra,
                    "process_peak_bytes": process_peak,
                }
            )
            depth_pred.append(out["depth_metric"][0].float().cpu().numpy())
            depth_gt.append(clip["depth"].numpy())
            ext_pred.append(out["extrinsic_metric"][0].float().cpu().numpy())
            ext_gt.append(clip["extrinsics"].numpy())
            scene = clips.scene(scene_id)
            m = scene.axis_alignment
            gt_pts = visible_mesh_points(sample_mesh(scene.mesh_path) @ m[:3, :3].T + m[:3, 3], clip)
            pred_pts = predicted_world_points(out, clip, spec.get("conf_quantile", 0.0))
            clouds.append(pointcloud_metrics(pred_pts, gt_pts))
            del out
    if not calls:
        raise ValueError(f"--data {spec['data']}: split '{spec['split']}' has no scenes")
    depth = depth_metrics(np.concatenate(depth_pred), np.concatenate(depth_gt))
    pose = pose_metrics(np.stack(ext_pred), np.stack(ext_gt))
    peak = max(c["peak_bytes"] for c in calls)
    return {
        "mode": mode["name"],
        "chunk_size": mode["chunk_size"],
        "overlap": mode["overlap"],
        "layout": mode["layout"],
        "merge_ratio": mode["merge_ratio"],
        "merge_proportional": mode["proportional"],
        "frames": spec["frames"],
        "scenes": len(calls),
        "abs_rel": depth["abs_rel"],
        "delta1": depth["delta1"],
        "rra@15": pose["rra@15"],
        "rta@15": pose["rta@15"],
        "auc@30": pose["auc@30"],
        "fscore": float(np.mean([c["fscore"] for c in clouds])),
        "chamfer": float(np.mean([c["chamfer"] for c in clouds])),
        "seconds": float(np.mean([c["seconds"] for c in calls])),
        "peak_gib": peak / 2**30,
        "process_peak_gib": max(c["process_peak_bytes"] for c in calls) / 2**30,
        "frames_per_gib": spec["frames"] / (peak / 2**30) if peak > 0 else None,
        "memory_method": method,
        "per_scene": calls,
        "torch_threads": torch.get_num_threads(),
    }


def markdown(rows: list[dict]) -> str:
    """The results as a Markdown table (the README / RESULTS.md table)."""
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "|".join("---:" for _ in COLUMNS) + "|"]
    for row in rows:
        cells = [("-" if row.get(k) is None else fmt.format(row[k])) for k, _, fmt in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=False, help="Vid-LLM model directory (save_pretrained)")
    parser.add_argument("--data", required=False, help="synthetic dataset root (vidllm synth), held-out scenes")
    parser.add_argument("--frames", default="64,256", help="comma-separated frames per video S")
    parser.add_argument("--modes", default="full,32/8", help=f"comma-separated modes: {MODES_HELP}")
    parser.add_argument("--split", default="all", choices=("all", "train", "val"), help="scenes of this split")
    parser.add_argument("--scenes", type=int, default=0, help="at most this many scenes (0 = all)")
    parser.add_argument(
        "--conf-quantile", type=float, default=0.0, help="drop predicted points below this confidence quantile"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per (mode, S) subprocess")
    parser.add_argument("--inprocess", action="store_true", help="measure in this process (no subprocess per run)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--markdown", default=None, help="write the table as Markdown here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if not args.checkpoint or not args.data:
        parser.error("--checkpoint and --data are required")
    try:
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        for m in modes:
            parse_mode(m)
        frames = [int(f) for f in args.frames.split(",")]
    except ValueError as err:
        parser.error(str(err))
    rows, errors = [], []
    for s in frames:
        for mode in modes:
            spec = {
                "checkpoint": str(args.checkpoint),
                "data": str(args.data),
                "frames": s,
                "mode": mode,
                "split": args.split,
                "scenes": args.scenes,
                "conf_quantile": args.conf_quantile,
                "device": args.device,
                "threads": args.threads,
            }
            try:
                row = worker(spec) if args.inprocess else run_worker(Path(__file__), spec, args.timeout)
            except Exception as err:  # an OOM or a timeout in one run must not lose the others
                errors.append({"frames": s, "mode": mode, "error": str(err)[-2000:]})
                print(
                    f"S={s} {mode}: FAILED ({str(err).splitlines()[-1] if str(err) else type(err).__name__})",
                    file=sys.stderr,
                )
                continue
            rows.append(row)
            print(f"measured S={s} {mode}: {row['seconds']:.1f} s/video", file=sys.stderr, flush=True)
    print_table(rows, COLUMNS)
    meta = {
        **machine_info(),
        "checkpoint": str(args.checkpoint),
        "data": str(args.data),
        "split": args.split,
        "device": args.device,
        "command": "python benchmarks/bench_long_video.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "isolation": "in-process" if args.inprocess else "subprocess per (mode, S)",
    }
    if rows:
        meta["torch_threads"] = rows[0]["torch_threads"]
    write_json(args.out, {"meta": meta, "results": rows, "errors": errors})
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(markdown(rows))
    return 0 if rows and not errors else 1


__all__ = ["main", "worker", "parse_mode", "set_global_merge", "markdown", "COLUMNS"]

if __name__ == "__main__":
    raise SystemExit(main())
