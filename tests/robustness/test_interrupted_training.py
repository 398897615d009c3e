"""Interrupted training: ``vidllm fit --stage 1`` killed with SIGKILL after its
first checkpoint resumes with ``--ckpt_path last``; the global step continues and the losses of
the steps after the resume equal those of an uninterrupted run with the same seed."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.training.test_fit_cli import MICRO

ROOT = Path(__file__).resolve().parents[2]
STEPS = 12  # checkpoints every STEPS // 4 = 3 steps (vidllm.training.fit.default_trainer_kwargs)


def _args(synthetic_root, teacher_files, out):
    return [
        sys.executable, "-m", "vidllm.cli", "fit", "--stage", "1", "--config", str(ROOT / "configs" / "tiny.yaml"),
        "--data.root", str(synthetic_root), *MICRO, "--data.batch_size", "1",
        "--train.distill.geometry_teacher", str(teacher_files / "model.pt"), "--train.distill.semantic_teacher", str(teacher_files / "clip"),
        "--train.max_steps", str(STEPS), "--trainer.max_steps", str(STEPS), "--trainer.accelerator", "cpu", "--out", str(out),
    ]  # fmt: skip


def _env():
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
    }


def _losses_by_step(run: Path, key: str = "train/loss") -> dict[int, float]:
    with open(run / "csv" / "metrics.csv") as f:
        return {
            int(row["step"]): float(row[key]) for row in csv.DictReader(f) if row.get(key)
        }  # last row of a step wins


@pytest.mark.slow
def test_sigkill_after_first_checkpoint_then_resume_matches_uninterrupted_run(tmp_path, synthetic_root, teacher_files):
    full = subprocess.run(
        _args(synthetic_root, teacher_files, tmp_path / "full"),
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=600,
    )
    assert full.returncode == 0, full.stderr[-3000:]
    reference = _losses_by_step(tmp_path / "full")
    assert sorted(reference) == list(range(STEPS))

    cut = tmp_path / "cut"
    last = cut / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(
        _args(synthetic_root, teacher_files, cut),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 600
        while not last.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert last.is_file(), "no checkpoint was written"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the run ended on its own before the kill: {err[-2000:]}"
    assert not (cut / "model").exists()  # killed mid-run: the final model was never written

    state = torch.load(last, weights_only=True)  # the checkpoint is complete despite the kill
    resumed_from = int(state["global_step"])
    assert 0 < resumed_from < STEPS

    resume = subprocess.run(
        [*_args(synthetic_root, teacher_files, cut), "--ckpt_path", "last"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=600,
    )
    assert resume.returncode == 0, resume.stderr[-3000:]
    assert (cut / "model" / "model.safetensors").is_file()
    assert int(torch.load(last, weights_only=True)["global_step"]) == STEPS  # the global step continued to the end
    resumed = _losses_by_step(cut)
    after = list(range(resumed_from, STEPS))
    assert sorted(resumed) == after, (
        f"the resumed run must log exactly steps {resumed_from}..{STEPS - 1}, got {sorted(resumed)}"
    )  # not restarted at 0
    torch.testing.assert_close(
        torch.tensor([resumed[s] for s in after]), torch.tensor([reference[s] for s in after]), rtol=1e-5, atol=1e-6
    )
