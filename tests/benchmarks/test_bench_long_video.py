"""benchmarks/bench_long_video.py in-process on the synthetic scenes with a micro model (no timing assertions)."""

import json
import math

import numpy as np
import pytest
import torch

from tests.helpers import load_script, micro_config


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/bench_long_video.py")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    from vidllm.model import VidLLM

    torch.manual_seed(0)
    return VidLLM(micro_config(), tokenizer).save_pretrained(tmp_path_factory.mktemp("long") / "model")


def test_full_and_chunked_rows(bench, model_dir, synthetic_root, tmp_path):
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    args = [
        "--checkpoint",
        str(model_dir),
        "--data",
        str(synthetic_root),
        "--frames",
        "6",
        "--modes",
        "full,4/2,4/2/anchored",
    ]
    assert bench.main(args + ["--split", "val", "--inprocess", "--out", str(out), "--markdown", str(md)]) == 0
    data = json.loads(out.read_text())
    rows = {r["mode"]: r for r in data["results"]}
    assert set(rows) == {"full", "chunk 4/2", "anchored 4/2"} and data["errors"] == []
    for row in rows.values():
        assert row["frames"] == 6 and row["scenes"] == 1
        for key in ("abs_rel", "rra@15", "fscore", "seconds", "peak_gib"):
            assert math.isfinite(row[key]) and row[key] >= 0, key
        assert 0 <= row["rra@15"] <= 1 and 0 <= row["fscore"] <= 1
        assert row["frames_per_gib"] is None or row["frames_per_gib"] == pytest.approx(6 / row["peak_gib"])
    table = md.read_text().splitlines()
    assert table[0].startswith("| mode | frames") and len(table) == 5 and "chunk 4/2" in table[3]
    assert "bench_long_video.py --checkpoint" in data["meta"]["command"]


def test_chunk_as_long_as_the_video_scores_as_the_full_forward(bench, model_dir, synthetic_root):
    spec = {"checkpoint": str(model_dir), "data": str(synthetic_root), "frames": 5, "split": "val", "scenes": 1}
    full = bench.worker({**spec, "mode": "full", "device": "cpu"})
    one = bench.worker({**spec, "mode": "5/2", "device": "cpu"})
    for key in ("abs_rel", "rra@15", "rta@15", "fscore", "chamfer"):
        assert one[key] == full[key], key
    assert np.isfinite(full["abs_rel"])


def test_merge_mode_switches_the_aggregator(bench, model_dir, synthetic_root):
    """A merge mode runs the full forward with the config's global_merge_ratio; its scores differ from full's."""
    spec = {"checkpoint": str(model_dir), "data": str(synthetic_root), "frames": 5, "split": "val", "scenes": 1}
    full = bench.worker({**spec, "mode": "full", "device": "cpu"})
    merged = bench.worker({**spec, "mode": "merge0.75", "device": "cpu"})
    assert (merged["mode"], merged["merge_ratio"], merged["merge_proportional"]) == ("merge 0.75", 0.75, True)
    assert full["merge_ratio"] == 0.0
    for key in ("abs_rel", "rra@15", "fscore"):
        assert math.isfinite(merged[key]), key
    assert merged["abs_rel"] != full["abs_rel"]


def test_bad_modes_and_too_few_frames(bench, model_dir, synthetic_root):
    with pytest.raises(ValueError, match="CHUNK/OVERLAP"):
        bench.parse_mode("32x8")
    with pytest.raises(ValueError, match="overlap"):
        bench.parse_mode("8/8")
    with pytest.raises(ValueError, match="layout"):
        bench.parse_mode("8/2/zigzag")
    assert bench.parse_mode("32/8/anchored") == {
        "name": "anchored 32/8",
        "chunk_size": 32,
        "overlap": 8,
        "layout": "anchored",
        "merge_ratio": 0.0,
        "proportional": True,
    }
    assert bench.parse_mode("merge0.8/plain") == {
        "name": "merge 0.8 plain",
        "chunk_size": None,
        "overlap": None,
        "layout": None,
        "merge_ratio": 0.8,
        "proportional": False,
    }
    for bad in ("merge1.0", "merge0", "mergex", "merge0.5/fast"):
        with pytest.raises(ValueError, match="merge"):
            bench.parse_mode(bad)
    spec = {"checkpoint": str(model_dir), "data": str(synthetic_root), "split": "val", "mode": "full", "device": "cpu"}
    with pytest.raises(ValueError, match="frames with valid poses"):
        bench.worker({**spec, "frames": 50})
