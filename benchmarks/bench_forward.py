"""Forward latency and peak memory of each Vid-LLM module and of the whole model, against S and resolution.

    python benchmarks/bench_forward.py --config configs/tiny.yaml --frames 2,4,8,16,32 \\
        --resolutions 112x140,224x294 --out outputs/bench/forward.json
    python benchmarks/bench_forward.py --device cuda --dtype bfloat16 --config configs/vidllm_large.yaml \\
        --resolutions 392x518 --frames 8,16,32
    python benchmarks/bench_forward.py --quick --out /tmp/forward.json      # seconds

Modules (inference, ``torch.no_grad``, batch ``--batch`` clips, random weights and images):

* ``encoder`` — shared DINOv2 encoder (with the intermediate layers the metric depth model reads);
* ``cta`` — Cross-Task Adapter on the encoder tokens;
* ``aggregator`` — frame/global alternating attention on ``T'_geom``;
* ``camera_head``, ``dpt_head`` — VGGT heads on the aggregator layers (fp32, as in the model);
* ``metric_depth`` — DPT decoder + metric bins on the encoder layers;
* ``alignment`` — real-scale alignment (per-frame LS scales + median);
* ``vl_branch`` — 3D patches, voxel pooling and the teacher-forced LLM pass on one QA prompt/answer;
* ``recon`` — ``VidLLM.forward(images)`` without VL (encoder → CTA → aggregator → heads →
  metric depth → alignment): the reconstruction forward;
* ``full`` — ``VidLLM.forward(images, vl_batch)``: reconstruction and VL branch.

Each (S, resolution) runs in a fresh subprocess (``--inprocess`` to disable): ``--warmup`` untimed
calls, ``--repeats`` timed calls (the median is reported), then one call measured for peak memory
(see ``benchmarks/_common.py``: CUDA allocator peak, or the RSS high-water mark on CPU; the extra
memory beyond weights and inputs). With ``--device cuda --dtype bfloat16`` the modules run under
bf16 autocast (the heads in fp32, as the model does).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from _common import (
    ROOT,
    finite_positive,
    machine_info,
    median,
    peak_memory,
    print_table,
    run_worker,
    time_call,
    torch_threads,
    write_json,
)  # noqa: E402

MODULES = (
    "encoder",
    "cta",
    "aggregator",
    "camera_head",
    "dpt_head",
    "metric_depth",
    "alignment",
    "vl_branch",
    "recon",
    "full",
)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CORPUS = [
    "what color is the chair",
    "red blue green yellow",
    "how many chairs are there",
    "two three",
    "find the table next to the bed",
]


def _parse_resolutions(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        h, w = item.lower().split("x")
        out.append((int(h), int(w)))
    return out


def _autocast(device: torch.device, dtype: str):
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[dtype])


def build_model(config: str, overrides: list[str], device: torch.device):
    """A :class:`VidLLM` with random weights (seed 0) in eval mode, and its config."""
    from vidllm.config import load_config
    from vidllm.model import VidLLM
    from vl.tokenizer import build_word_tokenizer

    cfg = load_config(config, overrides)
    torch.manual_seed(0)
    model = VidLLM(cfg, build_word_tokenizer(CORPUS) if cfg.llm.path is None else None).to(device).eval()
    return model, cfg


def qa_batch(batch: int) -> dict:
    """The VL text fields of ``batch`` QA samples (no grounding targets)."""
    from vl.prompts import render_prompt

    return {
        "prompts": [render_prompt("qa", question="what color is the chair")] * batch,
        "answers": ["red"] * batch,
        "tasks": ["qa"] * batch,
    }


def module_calls(model, cfg, images: torch.Tensor, device: torch.device, dtype: str) -> dict:
    """``{module: zero-argument callable}`` running each module on inputs computed once here."""
    from recon.alignment import real_scale_alignment
    from vidllm.model import FUSION_MODES

    amp = lambda: _autocast(device, dtype)  # noqa: E731
    b, s = images.shape[:2]
    image_hw = tuple(images.shape[-2:])
    patch = cfg.encoder.patch_size
    grid = (image_hw[0] // patch, image_hw[1] // patch)
    enc_layers = list(cfg.encoder.intermediate_layers) if model.metric_depth is not None else []
    vl_batch = qa_batch(b)
    with torch.no_grad(), amp():
        recon = model(images, return_vl_inputs=True)  # the module inputs, from the model's one forward
        streams, t_lang, geometry = recon.streams, recon.t_lang, recon.vl_geometry
        layers, start = model.aggregator(streams["t_geom"], grid)
    layers32 = {k: v.float() for k, v in layers.items()}
    last = cfg.recon.aggregator.depth - 1

    def run(fn, fp32: bool = False):
        def call():
            with torch.no_grad(), torch.autocast(device.type, enabled=False) if fp32 else amp():
                return fn()

        return call

    fusion = cfg.cta.mode in FUSION_MODES
    calls = {
        "encoder": run(lambda: model.encoder(images, layers=enc_layers)),
        "cta": run(
            lambda: (
                model.cta(streams["t_base"], geometry_tokens=recon.geometry_tokens)
                if fusion
                else model.cta(streams["t_base"])
            )
        ),
        "aggregator": run(lambda: model.aggregator(streams["t_geom"], grid)),
        "camera_head": run(lambda: model.camera_head(layers32[last]), fp32=True),
        "dpt_head": run(lambda: model.depth_head(layers32, image_hw, start, patch), fp32=True),
        "vl_branch": run(lambda: model.vl(t_lang, geometry, vl_batch)),
        "recon": run(lambda: model(images)),
        "full": run(lambda: model(images, vl_batch)),
    }
    if model.metric_depth is not None:
        md_layers = [streams["intermediates"][i] for i in cfg.encoder.intermediate_layers]
        al = cfg.metric_depth.alignment
        calls["metric_depth"] = run(lambda: model.metric_depth(md_layers, image_hw, s))
        calls["alignment"] = run(
            lambda: real_scale_alignment(
                recon.depth, recon.metric_depth, recon.depth_conf, None, al.num_frames, al.seed, al.min_valid_pixels
            )
        )
    return calls


def worker(spec: dict) -> dict:
    """Measure every requested module for one (S, H, W); runs inside the subprocess."""
    with torch_threads(spec.get("threads")):
        return _measure(spec)


def _measure(spec: dict) -> dict:
    device = torch.device(spec["device"])
    model, cfg = build_model(spec["config"], spec.get("overrides", []), device)
    torch.manual_seed(1)
    images = torch.rand(spec["batch"], spec["frames"], 3, spec["height"], spec["width"], device=device)
    calls = module_calls(model, cfg, images, device, spec["dtype"])
    rows = []
    for name in spec["modules"]:
        row = {
            "module": name,
            "frames": spec["frames"],
            "height": spec["height"],
            "width": spec["width"],
            "batch": spec["batch"],
        }
        if name not in calls:
            row["skipped"] = "disabled in this config"
            rows.append(row)
            continue
        times = time_call(calls[name], device, spec["warmup"], spec["repeats"])
        peak, method = peak_memory(calls[name], device)
        row.update(
            time_ms=1e3 * median(times),
            time_ms_min=1e3 * min(times),
            time_ms_all=[1e3 * t for t in times],
            time_ms_per_frame=1e3 * median(times) / spec["frames"],
            peak_mib=peak / 2**20,
            memory_method=method,
        )
        rows.append(row)
    return {"rows": rows, "torch_threads": torch.get_num_threads()}


def checks(rows: list[dict], small: int = 8, large: int = 32) -> dict:
    """Scaling checks from ``small`` to ``large`` frames, per resolution: peak memory of the whole
    forward (target ≤ 4.5×) and reconstruction time per frame (target ≤ 1.5×)."""
    out = {}
    by = {(r["module"], r["frames"], r["height"], r["width"]): r for r in rows if "time_ms" in r}
    for h, w in sorted({(r["height"], r["width"]) for r in rows}):
        entry = {}
        for module, key, target, name in (
            ("full", "peak_mib", 4.5, "memory_ratio_full"),
            ("recon", "peak_mib", 4.5, "memory_ratio_recon"),
            ("recon", "time_ms_per_frame", 1.5, "time_per_frame_ratio_recon"),
        ):
            a, b = by.get((module, small, h, w)), by.get((module, large, h, w))
            if a and b and a[key] > 0:
                ratio = b[key] / a[key]
                entry[name] = {
                    "ratio": ratio,
                    "target": target,
                    "pass": ratio <= target,
                    f"at_{small}": a[key],
                    f"at_{large}": b[key],
                }
        if entry:
            out[f"{h}x{w}"] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(ROOT / "configs" / "tiny.yaml"), help="model config YAML")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="dotted config override key=value (repeatable)"
    )
    parser.add_argument("--frames", default="2,4,8,16,32", help="comma-separated frame counts S")
    parser.add_argument(
        "--resolutions", default="112x140,224x294", help="comma-separated HxW (multiples of the patch size)"
    )
    parser.add_argument("--batch", type=int, default=1, help="clips per forward")
    parser.add_argument("--modules", default=",".join(MODULES), help=f"comma-separated subset of {','.join(MODULES)}")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--dtype", default="float32", choices=sorted(DTYPES), help="autocast dtype (float32 = no autocast)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before timing")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls (median reported)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument(
        "--inprocess",
        action="store_true",
        help="measure in this process instead of one fresh subprocess per (S, resolution)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny subset in seconds: S=2, 56x70, 1 warm-up, 2 repeats, in-process, 1 thread",
    )
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    if args.quick:  # in this process (no subprocess start-up), one thread
        args.frames, args.resolutions, args.warmup, args.repeats, args.inprocess = "2", "56x70", 1, 2, True
        args.threads = args.threads or 1
    frames = [int(f) for f in args.frames.split(",")]
    modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    unknown = sorted(set(modules) - set(MODULES))
    if unknown:
        parser.error(f"unknown modules {unknown}; choose from {MODULES}")
    rows, errors, threads = [], [], None
    for h, w in _parse_resolutions(args.resolutions):
        for s in frames:
            spec = {
                "config": str(args.config),
                "overrides": args.overrides,
                "frames": s,
                "height": h,
                "width": w,
                "batch": args.batch,
                "modules": modules,
                "device": args.device,
                "dtype": args.dtype,
                "warmup": args.warmup,
                "repeats": args.repeats,
                "threads": args.threads,
            }
            try:
                result = worker(spec) if args.inprocess else run_worker(Path(__file__), spec)
            except Exception as err:  # an OOM at one size must not lose the others
                errors.append({"frames": s, "height": h, "width": w, "error": str(err)[-2000:]})
                print(
                    f"S={s} {h}x{w}: FAILED ({str(err).splitlines()[-1] if str(err) else type(err).__name__})",
                    file=sys.stderr,
                )
                continue
            threads = result["torch_threads"]
            rows.extend(result["rows"])
            print(f"measured S={s} {h}x{w}", file=sys.stderr, flush=True)
    rows.sort(key=lambda r: (r["height"], r["width"], MODULES.index(r["module"]), r["frames"]))
    print_table(
        [r for r in rows if "time_ms" in r],
        [
            ("module", "module", "{}"),
            ("frames", "S", "{}"),
            ("height", "H", "{}"),
            ("width", "W", "{}"),
            ("time_ms", "median ms", "{:.1f}"),
            ("time_ms_per_frame", "ms/frame", "{:.2f}"),
            ("peak_mib", "peak MiB", "{:.1f}"),
        ],
    )
    scaling = checks(rows)
    for res, entry in scaling.items():
        for name, c in entry.items():
            print(f"{res} {name}: {c['ratio']:.2f} (target ≤ {c['target']}) {'PASS' if c['pass'] else 'MISS'}")
    meta = {
        **machine_info(),
        "config": str(args.config),
        "overrides": args.overrides,
        "device": args.device,
        "dtype": args.dtype,
        "batch": args.batch,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "isolation": "in-process" if args.inprocess else "subprocess per (S, resolution)",
    }
    if threads is not None:
        meta["torch_threads"] = threads
    write_json(args.out, {"meta": meta, "results": rows, "checks": scaling, "errors": errors})
    return 0 if rows and not errors else 1


__all__ = ["MODULES", "main", "worker", "checks", "build_model", "module_calls", "qa_batch", "finite_positive"]

if __name__ == "__main__":
    raise SystemExit(main())
