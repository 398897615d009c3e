"""Fixtures of the data tests: the real files in tests/fixtures (see its README) and the synthetic set (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real label tsv, split lists and SQA3D test split, kept inside the repository (tests/fixtures)."""
    assert (FIXTURES / "scannetv2-labels.combined.tsv").is_file(), f"test fixtures missing: {FIXTURES}"
    return FIXTURES


@pytest.fixture(scope="session")
def real_label_map(shared_data):
    from vidllm.data.labels import read_label_map

    return read_label_map(shared_data / "scannetv2-labels.combined.tsv")
