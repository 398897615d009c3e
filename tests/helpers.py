"""Helpers shared by test packages: a micro Vid-LLM config (seconds on CPU) and a word corpus."""

from pathlib import Path

from vidllm.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CORPUS = [
    "what color is the chair",
    "red blue green yellow",
    "find the table next to the bed",
    "how many chairs are there",
    "two three",
]


MICRO_SIZES = [
    "encoder.hidden_size=32",
    "encoder.num_heads=2",
    "encoder.num_layers=4",
    "cta.num_heads=2",
    "cta.num_bridge_tokens=4",
    "recon.aggregator.depth=4",
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
"""Size overrides of the micro model (dotted ``key=value``)."""

SHIPPED_SIZES = MICRO_SIZES + [
    "encoder.intermediate_layers=[0,1,2,3]",
    "recon.depth_head.intermediate_layers=[0,1,2,3]",
    "encoder.pretrain_image_size=56",
    "llm.vocab_size=null",
    "data.batch_size=1",
    "data.num_workers=0",
]
"""Sizes that shrink any shipped config (paper scale included) to the micro model: MICRO_SIZES plus the
layer indices, position-embedding grid and vocabulary that the micro depth and width make invalid or slow."""


def micro_config(**overrides):
    """configs/tiny.yaml shrunk further: 2 frames of 56×70, narrow heads; ``overrides`` are dotted keys."""
    base = MICRO_SIZES + ["recon.vggt_checkpoint=null"]
    return load_config(ROOT / "configs" / "tiny.yaml", base + [f"{k}={v}" for k, v in overrides.items()])


def load_script(relative_path: str):
    """Import a script that is not in a package (``benchmarks/bench_data.py``) as a module."""
    import importlib.util
    import sys

    path = ROOT / relative_path
    name = "script_" + path.with_suffix("").as_posix().replace("/", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def micro_run_overrides(data_root, teacher_dir) -> dict:
    """Config overrides that make a shipped config trainable at micro size on the test fixtures
    (``synthetic_root`` data, ``teacher_files`` teachers, no pretrained files)."""
    return {
        "data": {"root": str(data_root), "num_frames": 2, "image_size": 56},
        "train": {
            "init_from": None,
            "distill": {
                "geometry_teacher": str(teacher_dir / "model.pt"),
                "semantic_teacher": str(teacher_dir / "clip"),
            },
        },
        "encoder": {"pretrained_path": None},
        "recon": {"vggt_checkpoint": None},
        "llm": {"path": None},
    }


def tiny_recon_model():
    """A seeded 32-wide :class:`recon.model.ReconstructionModel` (2 encoder layers, 2 + 2 aggregator blocks, narrow
    heads) for 56-pixel frames, in the mode ``nn.Module`` starts in (training); callers set ``eval()`` as needed."""
    import torch

    from recon.config import AggregatorConfig, CameraHeadConfig, DepthHeadConfig, EncoderConfig, ReconConfig
    from recon.model import ReconstructionModel

    torch.manual_seed(0)
    enc = EncoderConfig(hidden_size=32, num_layers=2, num_heads=2, pretrain_image_size=56, intermediate_layers=[0, 1])
    cfg = ReconConfig(
        aggregator=AggregatorConfig(depth=2, num_heads=2),
        camera_head=CameraHeadConfig(trunk_depth=1, num_heads=2),
        depth_head=DepthHeadConfig(intermediate_layers=[0, 1, 1, 1], features=8, out_channels=[8, 8, 8, 8]),
    )
    return ReconstructionModel(enc, cfg)
