"""Session-wide fixtures shared by the test packages."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"

NO_CUDA_REASON = "GPU lane: needs a CUDA device (torch.cuda.is_available() is False); not run"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped, with the reason, when no CUDA device is present: reported as not run."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=NO_CUDA_REASON)
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real label tsv, split lists and SQA3D test split, kept inside the repository (tests/fixtures)."""
    assert (FIXTURES / "scannetv2-labels.combined.tsv").is_file(), f"test fixtures missing: {FIXTURES}"
    return FIXTURES


@pytest.fixture(scope="session")
def real_label_map(shared_data):
    """The real ScanNet label map (tests/fixtures/scannetv2-labels.combined.tsv)."""
    from vidllm.data.labels import read_label_map

    return read_label_map(shared_data / "scannetv2-labels.combined.tsv")


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A tiny synthetic dataset in the real formats: 3 scenes × 8 frames of 112×84 (depth 80×60).

    Scenes 0, 1 are 'train', scene 2 is 'val' (see vidllm.synthetic.world for the layout).
    """
    from vidllm.synthetic.world import SynthParams, generate_dataset

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


@pytest.fixture(scope="session")
def teacher_files(tmp_path_factory):
    """Stand-in stage-1 teachers in the real file formats, sized for tests.helpers.micro_config:
    a VGGT-layout ``model.pt`` (geometry) and a CLIP vision directory ``clip/`` (semantic)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from recon.model import ReconstructionModel
    from tests.helpers import micro_config

    root = tmp_path_factory.mktemp("teachers")
    cfg = micro_config()
    torch.save(ReconstructionModel(cfg.encoder, cfg.recon).vggt_state_dict(), root / "model.pt")
    clip = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7
    )
    CLIPVisionModel(clip).save_pretrained(root / "clip")
    return root


class _CurrentStderr:
    """A stream that always writes to the ``sys.stderr`` of the moment."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@pytest.fixture()
def cli_logging(monkeypatch):
    """Log handlers that write to the current ``sys.stderr``, for tests calling ``vidllm.cli.main``.

    ``main`` calls ``logging.basicConfig`` and Lightning adds its own ``StreamHandler``; both bind
    the ``sys.stderr`` of the moment. Under ``capsys`` that stream is closed after the test, and a
    later test's log records would print "--- Logging error ---" tracebacks that are not the CLI's
    output. Here every stream handler follows ``sys.stderr`` for the test's duration.
    """
    monkeypatch.setattr(logging.root, "handlers", [])
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if type(handler) is logging.StreamHandler:
                monkeypatch.setattr(handler, "stream", _CurrentStderr())
    yield
