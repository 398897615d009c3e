"""Fixtures of the data tests: the real files in ../shared/data and the synthetic set (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real label tsv, split lists and SQA3D test split (must exist: CI clones the repo beside shared/)."""
    assert SHARED_DATA.is_dir(), f"shared data folder missing: {SHARED_DATA.resolve()}"
    return SHARED_DATA.resolve()


@pytest.fixture(scope="session")
def real_label_map(shared_data):
    from vidllm.data.labels import read_label_map

    return read_label_map(shared_data / "scannetv2-labels.combined.tsv")
