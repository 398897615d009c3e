"""A micro Vid-LLM (seconds on CPU) shared by the model tests."""

from pathlib import Path

import pytest
import torch

from vidllm.config import load_config
from vl.tokenizer import build_word_tokenizer

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ["what color is the chair", "red blue green yellow", "find the table next to the bed", "how many chairs are there", "two three"]


def micro_config(**overrides):
    """configs/tiny.yaml shrunk further: 2 frames of 56×70, narrow heads."""
    base = [
        "encoder.hidden_size=32", "encoder.num_heads=2", "encoder.num_layers=4",
        "cta.num_heads=2", "cta.num_bridge_tokens=4",
        "recon.aggregator.depth=4", "recon.aggregator.num_heads=2", "recon.camera_head.num_heads=2", "recon.camera_head.trunk_depth=1",
        "recon.depth_head.features=16", "recon.depth_head.out_channels=[8,8,16,16]",
        "metric_depth.features=16", "metric_depth.out_channels=[8,8,16,16]", "metric_depth.n_bins=8",
        "llm.hidden_size=32", "llm.num_heads=2", "llm.num_kv_heads=1", "llm.intermediate_size=64", "llm.num_layers=1",
        "data.num_frames=2", "data.image_size=56",
    ]
    return load_config(ROOT / "configs" / "tiny.yaml", base + [f"{k}={v}" for k, v in overrides.items()])


@pytest.fixture(scope="session")
def tokenizer():
    return build_word_tokenizer(CORPUS)


@pytest.fixture
def clip():
    torch.manual_seed(0)
    images = torch.rand(2, 2, 3, 56, 70)
    gt = {
        "depth": torch.rand(2, 2, 56, 70) * 3 + 0.5,
        "extrinsics": torch.eye(3, 4).expand(2, 2, 3, 4).clone(),
        "intrinsics": torch.tensor([[60.0, 0, 35], [0, 60.0, 28], [0, 0, 1]]).expand(2, 2, 3, 3).clone(),
    }
    gt["extrinsics"][:, 1, 0, 3] = 0.3
    vl_batch = {"prompts": ["<3d> question: what color is the chair answer:", "<3d> find the object : the table answer:"], "answers": ["red", "<ground>"],
                "target_boxes": [torch.zeros(0, 6), torch.tensor([[0.5, 0.2, 2.0, 0.4, 0.4, 0.4]])]}
    return images, gt, vl_batch
