"""Session-wide fixtures shared by the test packages."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A tiny synthetic dataset in the real formats: 3 scenes × 8 frames of 112×84 (depth 80×60).

    Scenes 0, 1 are 'train', scene 2 is 'val' (see vidllm.data.synthetic for the layout).
    """
    from vidllm.data.synthetic import SynthParams, generate_dataset

    root = tmp_path_factory.mktemp("synthetic")
    params = SynthParams(num_frames=8, width=112, height=84, depth_width=80, depth_height=60, invalid_pose_frames=1)
    generate_dataset(root, 3, seed=7, params=params, workers=1)
    return root


@pytest.fixture(scope="session")
def tokenizer():
    """A word-level tokenizer over a small corpus (for micro models built with tests.helpers.micro_config)."""
    from tests.helpers import CORPUS
    from vl.tokenizer import build_word_tokenizer

    return build_word_tokenizer(CORPUS)
