"""Fixtures of the model tests: a fabricated clip with GT and VL text fields."""

import pytest
import torch


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
    vl_batch = {
        "prompts": ["<3d> question: what color is the chair answer:", "<3d> find the object : the table answer:"],
        "answers": ["red", "<ground>"],
        "target_boxes": [torch.zeros(0, 6), torch.tensor([[0.5, 0.2, 2.0, 0.4, 0.4, 0.4]])],
    }
    return images, gt, vl_batch
