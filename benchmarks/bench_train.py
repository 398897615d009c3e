"""Training throughput per stage: optimisation steps/s and samples/s of the real training module.

    python benchmarks/bench_train.py --config configs/tiny.yaml --steps 10 --out outputs/bench/train.json
    python benchmarks/bench_train.py --quick --out /tmp/train.json          # seconds (micro model)

For each stage (``--stages 1,2``) a :class:`vidllm.training.module.VidLLMModule` is built from the
config (stage 1 with its two frozen teachers and distillation heads), batches are drawn from the
real :class:`~vidllm.data.datamodule.VidLLMDataModule` on synthetic scenes (generated into a
temporary folder unless ``--data-root`` holds some) and cached in memory, so the figure is the
model step alone: ``loss.backward()``, ``optimizer.step()``, ``zero_grad`` — ``--warmup`` untimed
steps, then ``--steps`` timed ones. Teachers are stand-ins with random weights in the real file
formats (VGGT ``model.pt`` of the config's encoder, a CLIP vision directory of the tiny teacher's
size) unless ``--teachers DIR`` holds ``geometry/model.pt`` and ``semantic/`` (``vidllm teachers``
output); weights do not change the speed. Also reports the extra peak memory of one step
(RSS high-water mark on CPU, allocator peak on CUDA; see ``benchmarks/_common.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from _common import ROOT, machine_info, median, peak_memory, print_table, sync, torch_threads, write_json  # noqa: E402

# tests.helpers.micro_config sizes: the --quick model
MICRO = [
    "encoder.hidden_size=32",
    "encoder.num_heads=2",
    "cta.num_heads=2",
    "cta.num_bridge_tokens=4",
    "recon.aggregator.num_heads=2",
    "recon.camera_head.num_heads=2",
    "recon.camera_head.trunk_depth=1",
    "recon.depth_head.features=16",
    "recon.depth_head.out_channels=[8,8,16,16]",
    "metric_depth.features=16",
    "metric_depth.out_channels=[8,8,16,16]",
    "metric_depth.n_bins=8",
    "llm.hidden_size=32",
    "llm.num_heads=2",
    "llm.num_kv_heads=1",
    "llm.intermediate_size=64",
    "llm.num_layers=1",
    "data.num_frames=2",
    "data.image_size=56",
]
DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def stand_in_teachers(cfg, out: Path, small: bool = False) -> dict[str, Path]:
    """Random-weight teachers in the real formats: VGGT-layout ``model.pt`` and a CLIP vision dir."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from recon.model import ReconstructionModel

    out.mkdir(parents=True, exist_ok=True)
    torch.save(ReconstructionModel(cfg.encoder, cfg.recon).vggt_state_dict(), out / "model.pt")
    if small:
        clip = CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=28,
            patch_size=7,
        )
    else:  # the size `vidllm teachers` trains for the tiny config (vidllm.synthetic.tiny_teachers.teacher_config defaults)
        clip = CLIPVisionConfig(
            hidden_size=64,
            intermediate_size=256,
            num_hidden_layers=4,
            num_attention_heads=4,
            image_size=112,
            patch_size=14,
        )
    CLIPVisionModel(clip).save_pretrained(out / "clip")
    return {"geometry": out / "model.pt", "semantic": out / "clip"}


def load_batches(cfg, count: int) -> list[dict]:
    """``count`` training batches from the real DataModule (synthetic scenes generated if missing)."""
    from vidllm.data.datamodule import VidLLMDataModule

    dm = VidLLMDataModule(cfg.data)
    dm.prepare_data()
    loader = dm.train_dataloader()
    return list(itertools.islice(itertools.cycle(loader), count)) if len(loader) else []


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def bench_stage(
    cfg, stage: int, batches: list[dict], device: torch.device, dtype: str, warmup: int, steps: int
) -> dict:
    """Time ``steps`` optimisation steps of one stage after ``warmup`` untimed ones."""
    import dataclasses

    from vidllm.data.corpus import annotation_corpus
    from vidllm.training.module import VidLLMModule
    from vl.tokenizer import build_word_tokenizer

    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, stage=stage))
    torch.manual_seed(0)
    module = VidLLMModule(cfg, build_word_tokenizer(annotation_corpus(cfg.data)) if cfg.llm.path is None else None).to(
        device
    )
    module.train()
    optimizer = module.configure_optimizers()["optimizer"]
    losses_of = module.stage1_losses if stage == 1 else module.stage2_losses
    amp = (
        (lambda: torch.autocast(device.type, dtype=DTYPES[dtype]))
        if DTYPES[dtype] is not None
        else contextlib.nullcontext
    )
    batches = [_to(b, device) for b in batches]
    cycle = itertools.cycle(batches)

    def step():
        batch = next(cycle)
        with amp():
            loss = losses_of(batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    for _ in range(warmup):
        step()
    sync(device)
    times, last = [], None
    for _ in range(steps):
        start = time.perf_counter()
        last = step()
        sync(device)
        times.append(time.perf_counter() - start)
    peak, method = peak_memory(step, device)
    total = sum(times)
    batch_size = batches[0]["images"].shape[0]
    return {
        "stage": stage,
        "steps": steps,
        "batch_size": batch_size,
        "frames": int(batches[0]["images"].shape[1]),
        "image_hw": list(batches[0]["images"].shape[-2:]),
        "steps_per_s": steps / total,
        "samples_per_s": steps * batch_size / total,
        "step_ms_median": 1e3 * median(times),
        "step_ms_all": [1e3 * t for t in times],
        "peak_step_mib": peak / 2**20,
        "memory_method": method,
        "last_loss": float(last),
        "trainable_params": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(ROOT / "configs" / "tiny.yaml"), help="model config YAML")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="dotted config override key=value (repeatable)"
    )
    parser.add_argument("--stages", default="1,2", help="stages to time")
    parser.add_argument("--steps", type=int, default=10, help="timed optimisation steps per stage")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=0, help="clips per step (0 = data.batch_size of the config)")
    parser.add_argument("--frames", type=int, default=0, help="frames per clip (0 = data.num_frames of the config)")
    parser.add_argument(
        "--data-root",
        default=None,
        help="synthetic/ScanNet data root (default: synthetic scenes in a temporary folder)",
    )
    parser.add_argument("--teachers", default=None, help="`vidllm teachers` output dir (default: random stand-ins)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="autocast dtype")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument(
        "--quick", action="store_true", help="micro model, 2 frames of 56×70, 1 warm-up + 2 timed steps, 1 thread"
    )
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.threads = args.threads or 1
    with torch_threads(args.threads):
        return _run(args)


def _run(args) -> int:
    from vidllm.config import load_config

    device = torch.device(args.device)
    overrides = list(args.overrides)
    if args.quick:
        overrides = MICRO + overrides
        args.steps, args.warmup = 2, 1
    stages = [int(s) for s in args.stages.split(",")]
    with tempfile.TemporaryDirectory(prefix="vidllm-bench-train-") as tmp:
        tmp = Path(tmp)
        data = ["data.num_workers=0", "recon.vggt_checkpoint=null", "train.init_from=null"]
        if args.data_root is None:
            frames = 8 if args.quick else 16
            # --quick: a 2-frame clip; the walk keeps a point of the room in view, so objects are seen in both frames
            # (the synthetic language is only about objects visible in the clip)
            size = (
                ["data.synthetic_width=112", "data.synthetic_height=84", "data.synthetic_trajectory=walk"]
                if args.quick
                else []
            )
            data += [
                f"data.root={tmp / 'synthetic'}",
                "data.source=synthetic",
                "data.synthetic_scenes=3",
                f"data.synthetic_frames={frames}",
                *size,
            ]
        else:
            data.append(f"data.root={args.data_root}")
        if args.batch_size:
            data.append(f"data.batch_size={args.batch_size}")
        if args.frames:
            data.append(f"data.num_frames={args.frames}")
        cfg = load_config(args.config, data + overrides)
        if args.data_root is None and cfg.data.synthetic_frames < cfg.data.num_frames:
            cfg = load_config(args.config, data + overrides + [f"data.synthetic_frames={cfg.data.num_frames}"])
        if 1 in stages:
            if args.teachers:
                teachers = {
                    "geometry": Path(args.teachers) / "geometry" / "model.pt",
                    "semantic": Path(args.teachers) / "semantic",
                }
            else:
                teachers = stand_in_teachers(cfg, tmp / "teachers", small=args.quick)
            cfg = load_config(
                args.config,
                data
                + overrides
                + [
                    f"train.distill.geometry_teacher={teachers['geometry']}",
                    f"train.distill.semantic_teacher={teachers['semantic']}",
                ],
            )
        start = time.perf_counter()
        batches = load_batches(cfg, max(1, min(4, args.steps)))
        data_s = time.perf_counter() - start
        rows = [bench_stage(cfg, stage, batches, device, args.dtype, args.warmup, args.steps) for stage in stages]
    print_table(
        rows,
        [
            ("stage", "stage", "{}"),
            ("batch_size", "B", "{}"),
            ("frames", "S", "{}"),
            ("steps_per_s", "steps/s", "{:.2f}"),
            ("samples_per_s", "samples/s", "{:.2f}"),
            ("step_ms_median", "median ms/step", "{:.0f}"),
            ("peak_step_mib", "peak MiB", "{:.0f}"),
        ],
    )
    meta = {
        **machine_info(),
        "config": str(args.config),
        "overrides": overrides,
        "device": args.device,
        "dtype": args.dtype,
        "warmup": args.warmup,
        "data_prepare_s": data_s,
        "teachers": args.teachers or "random stand-ins",
    }
    write_json(args.out, {"meta": meta, "results": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
