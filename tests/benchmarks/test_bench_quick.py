"""The benchmark scripts' ``--quick`` modes run in-process and write complete JSON (no timing assertions)."""

import json
import math
from pathlib import Path

import pytest

from tests.helpers import load_script


def _load(name: str):
    return load_script(f"benchmarks/{name}.py")


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _run(name: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{name}.json"
    assert _load(name).main(["--quick", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert {"cpu", "cpu_count", "torch", "load_average_1_5_15"} <= set(data["meta"])
    return data


def test_bench_forward_quick(tmp_path, capsys):
    bench = _load("bench_forward")
    data = _run("bench_forward", tmp_path)
    assert "median ms" in capsys.readouterr().out
    rows = {r["module"]: r for r in data["results"]}
    assert set(rows) == set(bench.MODULES)
    for name, row in rows.items():
        assert (row["frames"], row["height"], row["width"]) == (2, 56, 70)
        assert _positive(row["time_ms"]) and _positive(row["time_ms_per_frame"]), name
        assert len(row["time_ms_all"]) == 2 and all(_positive(t) for t in row["time_ms_all"])
        assert math.isfinite(row["peak_mib"]) and row["peak_mib"] >= 0, name  # page-granular: tiny modules may read 0
    assert _positive(rows["full"]["peak_mib"]) and _positive(rows["recon"]["peak_mib"])
    assert data["errors"] == []


def test_bench_forward_scaling_checks():
    bench = _load("bench_forward")
    rows = [
        {"module": m, "frames": s, "height": 14, "width": 14, "time_ms": t, "time_ms_per_frame": t / s, "peak_mib": p}
        for m in ("full", "recon")
        for s, t, p in ((8, 8.0, 10.0), (32, 64.0, 50.0))
    ]
    checks = bench.checks(rows)["14x14"]
    assert checks["memory_ratio_full"]["ratio"] == pytest.approx(5.0) and not checks["memory_ratio_full"]["pass"]
    assert (
        checks["time_per_frame_ratio_recon"]["ratio"] == pytest.approx(2.0)
        and not checks["time_per_frame_ratio_recon"]["pass"]
    )


def test_bench_train_quick(tmp_path):
    data = _run("bench_train", tmp_path)
    rows = {r["stage"]: r for r in data["results"]}
    assert set(rows) == {1, 2}
    for stage, row in rows.items():
        for key in ("steps_per_s", "samples_per_s", "step_ms_median", "trainable_params"):
            assert _positive(row[key]), (stage, key)
        assert math.isfinite(row["last_loss"]) and row["peak_step_mib"] >= 0


def test_bench_data_quick(tmp_path):
    data = _run("bench_data", tmp_path)
    rows = {r["name"]: r for r in data["results"]}
    assert set(rows) == {"generator", "dataset", "loader_w0", "loader_w2"}
    assert _positive(rows["generator"]["scenes_per_s"]) and _positive(rows["generator"]["frames_per_s"])
    for name in ("dataset", "loader_w0", "loader_w2"):
        assert _positive(rows[name]["clips_per_s"]) and _positive(rows[name]["seconds"]), name
    assert _positive(rows["loader_w2"]["first_batch_s"])
