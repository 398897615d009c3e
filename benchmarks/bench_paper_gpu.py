"""Paper-scale GPU benchmark: ``configs/vidllm_large.yaml`` with random weights on one CUDA device.

    python benchmarks/bench_paper_gpu.py --out outputs/bench/paper_gpu.json
    python benchmarks/bench_paper_gpu.py --frames 8 --train-frames 8 --repeats 1     # a short check

Measures, under bf16 autocast (weights fp32, as ``bf16-mixed`` training and ``from_pretrained(dtype="bfloat16")``):

* ``recon`` — the reconstruction forward (encoder → CTA → aggregator → camera / depth heads → metric
  depth → alignment), ``torch.no_grad``, at 8 / 16 / 32 frames (``--frames``) of a 640×480 video
  preprocessed at ``--image-size`` (518: the config's ``data.resize_side`` decides 378×518 or 518×686);
* ``full`` — ``VidLLM.forward(images, QA prompt)``: reconstruction and the VL branch with the 7B LLM;
* ``train_step`` — one stage-2 optimisation step (AdamW, ``vidllm.training.module.VidLLMModule``) with
  activation checkpointing on (encoder, aggregator and LLM ``gradient_checkpointing``), on a batch of
  synthetic scenes in the real ScanNet formats at ``--train-frames`` frames.

Forward rows: median wall time of ``--repeats`` calls after ``--warmup``, and the CUDA allocator's
peak beyond the memory held before the call (weights and inputs excluded). The training row: median
step time and the peak of one step. No checkpoint is read (``vidllm.params.meta_config`` clears the
paths; the LLM is built from the ``llm.*`` sizes: Qwen2.5-7B's). Without CUDA the script exits with
status 2 and one line saying so; nothing is measured on CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from _common import median, peak_memory, print_table, time_call, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXIT_NO_CUDA = 2
CHECKPOINTING = [
    "encoder.gradient_checkpointing=true",
    "recon.aggregator.gradient_checkpointing=true",
    "llm.gradient_checkpointing=true",
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", default=str(ROOT / "configs" / "vidllm_large.yaml"), help="model config (default: the paper scale)"
    )
    parser.add_argument("--frames", default="8,16,32", help="comma-separated frame counts of the forward rows")
    parser.add_argument("--image-size", type=int, default=518, help="data.image_size (default 518, the paper's)")
    parser.add_argument(
        "--source-hw", default="480x640", help="HxW of the (random) source video frames, preprocessed like training"
    )
    parser.add_argument("--train-frames", type=int, default=8, help="frames of the stage-2 training step (0 skips it)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before timing")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per row")
    parser.add_argument(
        "--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE", help="extra config overrides"
    )
    parser.add_argument("--out", default=None, help="write the rows and the machine as JSON here")
    return parser.parse_args(argv)


def paper_config(config: str, image_size: int, overrides: list[str]):
    """The config with checkpoint paths cleared (no files read) and ``data.image_size`` set."""
    from vidllm.config import load_config
    from vidllm.params import meta_config

    cfg, notes = meta_config(load_config(config, [f"data.image_size={image_size}", *overrides]))
    return cfg, notes


def forward_rows(
    cfg, frames: list[int], source_hw: tuple[int, int], device: torch.device, warmup: int, repeats: int
) -> tuple[list[dict], int]:
    """Time and peak memory of the reconstruction forward and the full forward at each frame count; and the weights' bytes."""
    from bench_forward import qa_batch

    from vidllm.data.clip import output_geometry
    from vidllm.model import VidLLM
    from vl.tokenizer import build_word_tokenizer

    torch.manual_seed(0)
    with torch.device(device):
        model = VidLLM(cfg, build_word_tokenizer(["what color is the chair", "red"])).eval()
    hw = output_geometry(*source_hw, cfg.data.image_size, cfg.data.resize_side)[-2:]
    amp = lambda: torch.autocast(device.type, dtype=torch.bfloat16)  # noqa: E731
    rows = []
    for s in frames:
        images = torch.rand(1, s, 3, *hw, device=device)
        calls = {
            "recon": lambda images=images, m=model: m(images),  # VidLLM.forward without the VL branch
            "full": lambda images=images, m=model: m(images, qa_batch(1)),
        }
        for name, fn in calls.items():

            def call(fn=fn):
                with torch.no_grad(), amp():
                    return fn()

            times = time_call(call, device, warmup, repeats)
            peak, method = peak_memory(call, device)
            rows.append(
                {
                    "row": name,
                    "frames": s,
                    "image_hw": list(hw),
                    "ms_median": 1e3 * median(times),
                    "ms_all": [1e3 * t for t in times],
                    "peak_gib": peak / 2**30,
                    "memory_method": method,
                }
            )
            print(
                f"{name:10s} S={s:3d} {hw[0]}x{hw[1]}: {rows[-1]['ms_median']:.0f} ms, peak {rows[-1]['peak_gib']:.2f} GiB",
                flush=True,
            )
    return rows, sum(p.numel() * p.element_size() for p in model.parameters())


def train_row(
    cfg,
    frames: int,
    device: torch.device,
    warmup: int,
    repeats: int,
    source_hw: tuple[int, int] = (480, 640),
    scenes: int = 4,
) -> dict:
    """One stage-2 step with activation checkpointing on synthetic scenes (generated into a temp folder)."""
    import dataclasses

    from bench_train import bench_stage, load_batches

    from vidllm.config import config_from_dict

    with tempfile.TemporaryDirectory(prefix="vidllm-paper-gpu-") as tmp:
        data = {
            "source": "synthetic",
            "root": str(Path(tmp) / "data"),
            "num_frames": frames,
            "synthetic_frames": max(2 * frames, 8),
            "synthetic_scenes": scenes,
            "num_workers": 0,
            "batch_size": 1,
            "synthetic_width": source_hw[1],
            "synthetic_height": source_hw[0],
        }
        overrides = {"data": data, "train": {"stage": 2, "compile": False}}
        for item in CHECKPOINTING:
            key, value = item.split("=")
            node = overrides
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value == "true"
        tcfg = config_from_dict(overrides, source="bench_paper_gpu", base=cfg)
        tcfg = dataclasses.replace(tcfg, train=dataclasses.replace(tcfg.train, stage=2))
        batches = load_batches(tcfg, max(1, warmup + repeats))
        if not batches:
            raise RuntimeError("bench_paper_gpu: the synthetic training split is empty")
        result = bench_stage(tcfg, 2, batches, device, "bfloat16", warmup, repeats)
    result["row"] = "train_step"
    result["activation_checkpointing"] = CHECKPOINTING
    result["peak_gib"] = result["peak_step_mib"] / 1024
    print(
        f"train_step S={frames}: {result['step_ms_median']:.0f} ms, peak {result['peak_gib']:.2f} GiB, loss {result['last_loss']:.3f}",
        flush=True,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "bench_paper_gpu: needs a CUDA device (torch.cuda.is_available() is False); nothing measured",
            file=sys.stderr,
        )
        return EXIT_NO_CUDA
    device = torch.device("cuda")
    cfg, notes = paper_config(args.config, args.image_size, args.overrides)
    frames = [int(f) for f in args.frames.split(",") if f.strip()]
    source_hw = tuple(int(v) for v in args.source_hw.lower().split("x"))
    rows, weight_bytes = forward_rows(cfg, frames, source_hw, device, args.warmup, args.repeats)
    torch.cuda.empty_cache()  # the inference model is gone; the training row builds its own
    if args.train_frames:
        rows.append(train_row(cfg, args.train_frames, device, args.warmup, args.repeats, source_hw))
    machine = {
        "gpu": torch.cuda.get_device_name(device),
        "gpu_memory_gib": torch.cuda.get_device_properties(device).total_memory / 2**30,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
    }
    with contextlib.suppress(Exception):
        from recon.attention import resolve_backend

        machine["attention_backend"] = resolve_backend(cfg.attention_backend, device)
    print_table(
        [r for r in rows if r["row"] != "train_step"],
        [
            ("row", "row", "{}"),
            ("frames", "S", "{}"),
            ("ms_median", "ms", "{:.0f}"),
            ("peak_gib", "peak GiB", "{:.2f}"),
        ],
    )
    payload = {
        "config": args.config,
        "notes": notes,
        "weights_gib_fp32": weight_bytes / 2**30,
        "machine": machine,
        "rows": rows,
    }
    write_json(args.out, payload)
    if args.out is None:
        print(json.dumps(machine))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
