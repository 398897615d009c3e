"""Fixtures of the command tests."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import micro_config


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    """A saved micro model (``save_pretrained``) of 3-frame clips, untrained (seed 0)."""
    from vidllm.model import VidLLM

    torch.manual_seed(0)
    return VidLLM(micro_config(**{"data.num_frames": 3}), tokenizer).save_pretrained(
        tmp_path_factory.mktemp("commands") / "model"
    )
