"""LineProgress: one line per interval, with the step, loss and speed, on rank 0 only."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from vidllm.training.line_progress import LineProgress


def _trainer(step: int, loss: float | None = 0.5, rank0: bool = True) -> SimpleNamespace:
    metrics = {} if loss is None else {"train/loss": torch.tensor(loss)}
    return SimpleNamespace(global_step=step, max_steps=100, callback_metrics=metrics, is_global_zero=rank0)


def test_prints_at_most_every_interval_and_at_the_end(monkeypatch):
    clock = iter([0.0, 10.0, 30.0, 61.0, 70.0, 125.0, 130.0])
    monkeypatch.setattr("vidllm.training.line_progress.time.perf_counter", lambda: next(clock))
    lines: list[str] = []
    cb = LineProgress(every_seconds=60.0, label="stage 2", printer=lines.append)
    cb.on_train_start(_trainer(0), None)  # t = 0
    for step, _ in zip((1, 2, 3, 4, 5), range(5)):  # t = 10, 30, 61, 70, 125
        cb.on_train_batch_end(_trainer(step), None, None, None, step)
    assert lines == [
        "stage 2: step 3/100 · loss 0.5000 · 20.33 s/step · 61 s",
        "stage 2: step 5/100 · loss 0.5000 · 25.00 s/step · 125 s",
    ]
    cb.on_train_end(_trainer(6, loss=None), None)  # t = 130
    assert lines[-1] == "stage 2: step 6/100 · 21.67 s/step · 130 s"


def test_silent_on_other_ranks(monkeypatch):
    clock = iter([0.0, 100.0, 200.0])
    monkeypatch.setattr("vidllm.training.line_progress.time.perf_counter", lambda: next(clock))
    lines: list[str] = []
    cb = LineProgress(every_seconds=1.0, printer=lines.append)
    cb.on_train_start(_trainer(0, rank0=False), None)
    cb.on_train_batch_end(_trainer(1, rank0=False), None, None, None, 0)
    cb.on_train_end(_trainer(1, rank0=False), None)
    assert lines == []
