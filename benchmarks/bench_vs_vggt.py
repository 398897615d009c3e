"""Our reconstruction forward against the official VGGT code at equal size and equal weights (CPU, fp32).

    PYTHONPATH=. python benchmarks/bench_vs_vggt.py --official-root /tmp/vggt_official \\
        --out benchmarks/results/vs_vggt_cpu.json
    PYTHONPATH=. python benchmarks/bench_vs_vggt.py --official-root /tmp/vggt_official --memory \\
        --out benchmarks/results/vs_vggt_memory_cpu.json

``--official-root`` is a directory containing the official facebookresearch/vggt ``vggt`` package
(not part of this repository). Both sides are built at one config (default: width 256, 8 frame +
8 global blocks, 4 heads, conv patch embed, camera + DPT depth heads; see
``_vggt_official.bench_configs``) and hold the same weights: ours is initialised, its LayerScale,
norms, biases and tokens are spread (so every block matters), and its ``vggt_state_dict()`` is
loaded strictly into the official ``Aggregator``/``CameraHead``/``DPTHead``. The outputs are
compared first (max relative error per output; the run aborts above ``--tolerance``).

Timing (default mode): ``torch.no_grad()`` forwards of ``--frames`` random images, ``--warmup``
untimed calls of each, then ``--pairs`` pairs timed back to back (ours, official), the order
alternating from pair to pair so neither side always runs first. Reported: both medians, the
median of the per-pair ratios ours/official with its min/max and interquartile range, and the
1-minute load average before and after (the machine may be shared); the same summary of the
process CPU time per call (both threads; it also counts OpenMP spin-waiting, so it is about as
sensitive to other jobs as wall clock). ``--control`` times the official code against a second
copy of itself instead: the noise floor of the ratio. ``--compile default`` times our forward compiled with
frozen weights (:func:`recon.compiled.compile_for_inference`; the outputs are compared again after compiling),
``--compile-official default`` the official forward likewise.

Memory (``--memory``): the extra peak resident memory of one forward (RSS high-water mark, see
``benchmarks/_common.py``) of each side at each of ``--memory-frames``, every (side, frames) in a
fresh subprocess after a 2-frame warm-up call (the outputs are compared once at 2 frames first);
per-frame figures, marginal MiB per added frame and a linear fit. Writes ``--out`` (JSON) and the same tables as Markdown next to it (``.md``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from _common import machine_info, peak_memory, print_table, run_worker, write_json  # noqa: E402
from _vggt_official import (  # noqa: E402
    OfficialImportError,
    bench_configs,
    build_pair,
    import_official,
    max_rel_errors,
    official_kwargs,
)

from recon.compiled import COMPILE_MODES, compile_for_inference  # noqa: E402

MEMORY_FRAMES = (8, 16, 32, 64, 128)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--official-root", default=None, help="directory containing the official `vggt` package")
    parser.add_argument("--frames", type=int, default=8, help="frames S per clip (timing mode)")
    parser.add_argument("--image-size", type=int, default=224, help="square image side (multiple of 14)")
    parser.add_argument("--dim", type=int, default=256, help="token width of patch embed and aggregator")
    parser.add_argument("--depth", type=int, default=8, help="frame blocks (= global blocks)")
    parser.add_argument("--heads", type=int, default=None, help="aggregator heads (default dim // 64)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--pairs", type=int, default=7, help="timed (ours, official) pairs")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls of each side before timing")
    parser.add_argument("--seed", type=int, default=0, help="weights and images seed")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="abort if any max relative error exceeds this")
    parser.add_argument("--control", action="store_true", help="time the official code against a copy of itself")
    parser.add_argument(
        "--compile",
        default="none",
        choices=COMPILE_MODES,
        help="timing: run our forward through recon.compiled.compile_for_inference (inductor, frozen weights); "
        "the outputs are compared again after compiling",
    )
    parser.add_argument(
        "--compile-official",
        default="none",
        choices=COMPILE_MODES,
        help="timing: the same for the official forward (to see what the compiler alone gives the official code)",
    )
    parser.add_argument("--memory", action="store_true", help="peak-memory sweep instead of timing")
    parser.add_argument(
        "--memory-frames", default=",".join(map(str, MEMORY_FRAMES)), help="comma-separated S of the memory sweep"
    )
    parser.add_argument("--out", default=None, help="write the results as JSON here (and Markdown next to it)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.image_size % 14:
        parser.error(f"--image-size {args.image_size} is not a multiple of the patch size 14")
    return args


def config_summary(args: argparse.Namespace) -> dict:
    """The benchmark config as plain data: our configs' sizes and the official constructor arguments."""
    enc, cfg = bench_configs(args.dim, args.depth, args.heads)
    kwargs = official_kwargs(enc, cfg, args.image_size)
    return {
        "dim": args.dim,
        "depth": args.depth,
        "heads": cfg.aggregator.num_heads,
        "image_size": args.image_size,
        "patch_size": enc.patch_size,
        "camera_heads": cfg.camera_head.num_heads,
        "camera_iterations": cfg.camera_head.iterations,
        "dpt_layers": list(cfg.depth_head.intermediate_layers),
        "dpt_features": cfg.depth_head.features,
        "dpt_out_channels": list(cfg.depth_head.out_channels),
        "frames_chunk_size": cfg.depth_head.frames_chunk_size,
        "official_kwargs": {k: dict(d) for k, d in kwargs.items()},
    }


def _images(frames: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, frames, 3, size, size, generator=g)


def _pair(args: argparse.Namespace):
    classes = import_official(args.official_root)
    enc, cfg = bench_configs(args.dim, args.depth, args.heads)
    return build_pair(classes, enc, cfg, args.image_size, seed=args.seed)


def check_parity(ours, official, images: torch.Tensor, tolerance: float) -> dict[str, float]:
    """Max relative error per output; raises ``SystemExit`` naming the outputs above ``tolerance``."""
    with torch.no_grad():
        errors = max_rel_errors(ours(images), official(images))
    print("max relative error ours vs official: " + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
    bad = {k: v for k, v in errors.items() if not v <= tolerance}
    if bad:
        raise SystemExit(f"outputs differ beyond --tolerance {tolerance:g}: {bad}; not timing different computations")
    return errors


def interleaved_times(
    fns: dict[str, Callable[[], object]], warmup: int, pairs: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and process-CPU seconds per call of the two callables of ``fns``, timed in alternating order over
    ``pairs`` pairs (pair 0: first, second; pair 1: second, first; ...)."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for i in range(pairs):
        for name in names if i % 2 == 0 else names[::-1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            fns[name]()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


def ratio_summary(ours: list[float], official: list[float]) -> dict:
    """Per-pair ratios ours/official: median, min, max, quartiles, and the ratio of the medians."""
    ratios = sorted(a / b for a, b in zip(ours, official, strict=True))
    q = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratios[0]] * 3
    return {
        "ratio_median": statistics.median(ratios),
        "ratio_min": ratios[0],
        "ratio_max": ratios[-1],
        "ratio_q1": q[0],
        "ratio_q3": q[2],
        "ratio_of_medians": statistics.median(ours) / statistics.median(official),
        "ratios": ratios,
    }


def run_timing(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    ours, official = _pair(args)
    images = _images(args.frames, args.image_size, args.seed + 7)
    errors = check_parity(ours, official, images, args.tolerance)
    if args.control:  # the official code against a second copy of itself: the ratio's noise floor
        ours = copy.deepcopy(official)
    labels = ("official_copy", "official") if args.control else ("ours", "official")
    compile_s = {}
    if args.compile != "none" or args.compile_official != "none":
        start = time.perf_counter()
        ours = compile_for_inference(ours, args.compile)
        official = compile_for_inference(official, args.compile_official)
        errors = check_parity(ours, official, images, args.tolerance)  # the first calls compile
        compile_s = {"compile_and_first_calls_s": time.perf_counter() - start}
        print(
            f"compiled (ours {args.compile}, official {args.compile_official}) in {compile_s['compile_and_first_calls_s']:.0f} s"
        )
    load_before = os.getloadavg()[0]

    def call(model):
        def run():
            with torch.no_grad():
                return model(images)

        return run

    wall, cpu = interleaved_times({labels[0]: call(ours), labels[1]: call(official)}, args.warmup, args.pairs)
    load_after = os.getloadavg()[0]
    a, b = wall[labels[0]], wall[labels[1]]
    summary = ratio_summary(a, b)
    cpu_summary = ratio_summary(cpu[labels[0]], cpu[labels[1]])
    result = {
        "mode": "control" if args.control else "timing",
        "labels": list(labels),
        "compile": {labels[0]: args.compile, labels[1]: args.compile_official, **compile_s},
        "frames": args.frames,
        "max_rel_error": errors,
        f"{labels[0]}_ms_median": 1e3 * statistics.median(a),
        f"{labels[1]}_ms_median": 1e3 * statistics.median(b),
        f"{labels[0]}_ms_all": [1e3 * t for t in a],
        f"{labels[1]}_ms_all": [1e3 * t for t in b],
        **summary,
        "cpu_time": {
            f"{labels[0]}_ms_median": 1e3 * statistics.median(cpu[labels[0]]),
            f"{labels[1]}_ms_median": 1e3 * statistics.median(cpu[labels[1]]),
            **cpu_summary,
        },
        "load_1min_before": load_before,
        "load_1min_after": load_after,
    }
    print(
        f"{labels[0]} {result[f'{labels[0]}_ms_median']:.1f} ms, {labels[1]} {result[f'{labels[1]}_ms_median']:.1f} ms "
        f"(median of {args.pairs}); ratio {summary['ratio_median']:.3f} "
        f"[min {summary['ratio_min']:.3f}, max {summary['ratio_max']:.3f}]; process-CPU-time ratio "
        f"{cpu_summary['ratio_median']:.3f} [{cpu_summary['ratio_min']:.3f}, {cpu_summary['ratio_max']:.3f}]; "
        f"1-min load {load_before:.2f} → {load_after:.2f}"
    )
    return result


def worker(spec: dict) -> dict:
    """One (side, frames) memory measurement; runs in a fresh subprocess."""
    args = argparse.Namespace(**spec["args"])
    torch.set_num_threads(args.threads)
    ours, official = _pair(args)
    model = ours if spec["side"] == "ours" else official
    del ours, official
    with torch.no_grad():
        model(_images(2, args.image_size, args.seed + 7))  # warm-up: thread pools, RoPE and position caches
    images = _images(spec["frames"], args.image_size, args.seed + 7)

    def call():
        with torch.no_grad():
            return model(images)

    start = time.perf_counter()
    peak, method = peak_memory(call, torch.device("cpu"))
    return {
        "side": spec["side"],
        "frames": spec["frames"],
        "peak_mib": peak / 2**20,
        "memory_method": method,
        "call_s": time.perf_counter() - start,
    }


def memory_table(rows: list[dict]) -> list[dict]:
    """Per frame count: both peaks, MiB per frame, ours/official, and marginal MiB per added frame."""
    by = {(r["side"], r["frames"]): r["peak_mib"] for r in rows}
    frames = sorted({r["frames"] for r in rows})
    table, prev = [], None
    for s in frames:
        o, f = by.get(("ours", s)), by.get(("official", s))
        row = {"frames": s, "ours_mib": o, "official_mib": f}
        row["ours_mib_per_frame"] = None if o is None else o / s
        row["official_mib_per_frame"] = None if f is None else f / s
        row["ratio"] = None if o is None or not f else o / f
        for side in ("ours", "official"):
            cur, last = by.get((side, s)), by.get((side, prev)) if prev else None
            row[f"{side}_marginal_mib_per_frame"] = None if cur is None or last is None else (cur - last) / (s - prev)
        table.append(row)
        prev = s
    return table


def linear_fit(frames: list[int], peaks: list[float]) -> dict:
    """Least-squares ``peak ≈ a + b·S``: slope b (MiB/frame), intercept a, R², and the largest residual as a
    fraction of that point's peak."""
    n = len(frames)
    if n < 2:
        return {}
    mx, my = sum(frames) / n, sum(peaks) / n
    sxx = sum((x - mx) ** 2 for x in frames)
    b = sum((x - mx) * (y - my) for x, y in zip(frames, peaks)) / sxx
    a = my - b * mx
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(frames, peaks))
    ss_tot = sum((y - my) ** 2 for y in peaks)
    return {
        "slope_mib_per_frame": b,
        "intercept_mib": a,
        "r2": 1.0 - ss_res / ss_tot if ss_tot else 1.0,
        "max_residual_fraction": max(abs(y - (a + b * x)) / y for x, y in zip(frames, peaks) if y > 0),
    }


def memory_checks(table: list[dict], at: int = 32) -> dict:
    """Ours ≤ official at ``at`` frames, and each side's linear fit over the sweep."""
    out = {}
    row = next((r for r in table if r["frames"] == at), None)
    if row and row["ours_mib"] is not None and row["official_mib"] is not None:
        out[f"ours_le_official_at_{at}"] = {
            "ours_mib": row["ours_mib"],
            "official_mib": row["official_mib"],
            "pass": row["ours_mib"] <= row["official_mib"],
        }
    for side in ("ours", "official"):
        pts = [(r["frames"], r[f"{side}_mib"]) for r in table if r[f"{side}_mib"] is not None]
        out[f"{side}_linear_fit"] = linear_fit([p[0] for p in pts], [p[1] for p in pts])
    return out


def run_memory(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    ours, official = _pair(args)  # fails here, not in every worker, if the official code does not import
    errors_2 = check_parity(ours, official, _images(2, args.image_size, args.seed + 7), args.tolerance)
    del ours, official
    frames = [int(s) for s in args.memory_frames.split(",") if s.strip()]
    plain = {k: v for k, v in vars(args).items() if k != "worker"}
    rows, errors = [], []
    for s in frames:
        for side in ("ours", "official"):
            try:
                rows.append(run_worker(Path(__file__), {"args": plain, "side": side, "frames": s}))
            except Exception as err:  # an OOM at one size must not lose the others
                errors.append({"side": side, "frames": s, "error": str(err)[-2000:]})
                print(f"{side} S={s}: FAILED", file=sys.stderr)
                continue
            r = rows[-1]
            print(f"{side} S={s}: {r['peak_mib']:.1f} MiB ({r['call_s']:.1f} s)", file=sys.stderr, flush=True)
    table = memory_table(rows)
    return {
        "mode": "memory",
        "max_rel_error_at_2_frames": errors_2,
        "rows": rows,
        "table": table,
        "checks": memory_checks(table),
        "errors": errors,
    }


# --------------------------------------------------------------------------- output
def _fmt(value, spec: str) -> str:
    return "-" if value is None else spec.format(value)


def markdown(result: dict, meta: dict) -> str:
    """The result as Markdown tables (the same figures as the JSON)."""
    cfg = meta["config"]
    head = (
        f"Config: width {cfg['dim']}, {cfg['depth']}+{cfg['depth']} blocks, {cfg['heads']} heads, conv patch embed "
        f"(patch {cfg['patch_size']}), {cfg['image_size']}², DPT layers {cfg['dpt_layers']}, fp32, CPU "
        f"`{meta['cpu']}`, {meta['torch_threads_used']} threads, torch {meta['torch']}.\n\n"
    )
    if result["mode"] == "memory":
        lines = [
            "| S | ours MiB | official MiB | ours/official | ours MiB/frame | official MiB/frame "
            "| ours marginal MiB/frame | official marginal MiB/frame |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in result["table"]:
            lines.append(
                f"| {r['frames']} | {_fmt(r['ours_mib'], '{:.1f}')} | {_fmt(r['official_mib'], '{:.1f}')} "
                f"| {_fmt(r['ratio'], '{:.3f}')} | {_fmt(r['ours_mib_per_frame'], '{:.2f}')} "
                f"| {_fmt(r['official_mib_per_frame'], '{:.2f}')} | {_fmt(r['ours_marginal_mib_per_frame'], '{:.2f}')} "
                f"| {_fmt(r['official_marginal_mib_per_frame'], '{:.2f}')} |"
            )
        fits = [
            f"- {side}: {f['slope_mib_per_frame']:.2f} MiB/frame + {f['intercept_mib']:.1f} MiB, R² {f['r2']:.4f}, "
            f"largest residual {100 * f['max_residual_fraction']:.1f} % of that peak"
            for side in ("ours", "official")
            if (f := result["checks"].get(f"{side}_linear_fit"))
        ]
        return (
            head
            + "Extra peak RSS of one forward:\n\n"
            + "\n".join(lines)
            + "\n\nLinear fit:\n\n"
            + "\n".join(fits)
            + "\n"
        )
    a, b = result["labels"]
    err = ", ".join(f"{k} {v:.1e}" for k, v in result["max_rel_error"].items())
    rows = [("wall clock", result, f"{result['load_1min_before']:.2f} → {result['load_1min_after']:.2f}")]
    if "cpu_time" in result:
        rows.append(("process CPU time", result["cpu_time"], ""))
    lines = [
        f"S = {result['frames']}, {len(result['ratios'])} interleaved pairs; compile: {a} "
        f"`{result.get('compile', {}).get(a, 'none')}`, {b} `{result.get('compile', {}).get(b, 'none')}`; "
        f"max relative error: {err}.\n",
        f"| measure | {a} median ms | {b} median ms | ratio {a}/{b} (median of pairs) | min | q1 | q3 | max "
        "| 1-min load before → after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r, load in rows:
        lines.append(
            f"| {name} | {r[f'{a}_ms_median']:.1f} | {r[f'{b}_ms_median']:.1f} | {r['ratio_median']:.3f} "
            f"| {r['ratio_min']:.3f} | {r['ratio_q1']:.3f} | {r['ratio_q3']:.3f} | {r['ratio_max']:.3f} | {load} |"
        )
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    try:
        import_official(args.official_root)
    except OfficialImportError as err:
        print(f"bench_vs_vggt: {err}", file=sys.stderr)
        return 2
    result = run_memory(args) if args.memory else run_timing(args)
    meta = {**machine_info(), "torch_threads_used": args.threads, "config": config_summary(args)}
    meta["official_root"] = str(Path(args.official_root).resolve())
    if result["mode"] == "memory":
        print_table(
            result["table"],
            [
                ("frames", "S", "{}"),
                ("ours_mib", "ours MiB", "{:.1f}"),
                ("official_mib", "official MiB", "{:.1f}"),
                ("ratio", "ours/off", "{:.3f}"),
                ("ours_mib_per_frame", "ours MiB/S", "{:.2f}"),
                ("official_mib_per_frame", "off MiB/S", "{:.2f}"),
            ],
        )
        for name, check in result["checks"].items():
            print(f"{name}: {json.dumps(check)}")
    write_json(args.out, {"meta": meta, "result": result})
    if args.out:
        Path(args.out).with_suffix(".md").write_text(markdown(result, meta))
    return 0 if not result.get("errors") else 1


__all__ = [
    "main",
    "parse_args",
    "config_summary",
    "check_parity",
    "interleaved_times",
    "ratio_summary",
    "memory_table",
    "memory_checks",
    "linear_fit",
    "markdown",
    "worker",
]

if __name__ == "__main__":
    raise SystemExit(main())
