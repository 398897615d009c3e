"""benchmarks/bench_paper_gpu.py: refuses to measure without CUDA; its code paths run at micro size on CPU
(figures on CPU are not GPU figures: only the script's mechanics are checked here)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import load_script

bench = load_script("benchmarks/bench_paper_gpu.py")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present: the no-CUDA exit cannot be observed")
def test_exits_cleanly_without_cuda(capsys):
    assert bench.main(["--frames", "8"]) == bench.EXIT_NO_CUDA
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bench_paper_gpu: needs a CUDA device (torch.cuda.is_available() is False); nothing measured"]


def test_paper_config_reads_no_checkpoint():
    cfg, notes = bench.paper_config(str(bench.ROOT / "configs" / "vidllm_large.yaml"), 518, [])
    assert (cfg.llm.path, cfg.encoder.pretrained_path, cfg.recon.vggt_checkpoint, cfg.train.init_from) == (
        None,
        None,
        None,
        None,
    )
    assert cfg.data.image_size == 518 and cfg.llm.hidden_size == 3584 and any("llm.path" in n for n in notes)


def test_rows_at_micro_size_on_cpu():
    cfg, _ = bench.paper_config(
        str(bench.ROOT / "configs" / "tiny.yaml"), 56, [*_micro_pairs(), "data.resize_side=longer"]
    )
    rows, weight_bytes = bench.forward_rows(cfg, [2], (84, 112), torch.device("cpu"), 0, 1)
    assert [(r["row"], r["frames"]) for r in rows] == [("recon", 2), ("full", 2)] and weight_bytes > 0
    assert all(r["ms_median"] > 0 and r["image_hw"] == [42, 56] for r in rows)
    row = bench.train_row(cfg, 2, torch.device("cpu"), 0, 1, source_hw=(84, 112), scenes=3)
    assert row["row"] == "train_step" and row["frames"] == 2 and torch.isfinite(torch.tensor(row["last_loss"]))
    assert "llm.gradient_checkpointing=true" in row["activation_checkpointing"]


def _micro_pairs() -> list[str]:
    from tests.helpers import MICRO_SIZES

    return [s for s in MICRO_SIZES if not s.startswith("data.image_size")]
