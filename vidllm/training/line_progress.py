"""One-line progress reports for training runs whose output is not a terminal.

Lightning's bar is off there (:func:`vidllm.progress.terminal_progress`); this callback prints
``step k/N · loss · s/step · elapsed`` at most every ``every_seconds`` instead, so a log file shows
that a long run is alive and how fast it goes without thousands of carriage-return refreshes.
"""

from __future__ import annotations

import time

import lightning as L

__all__ = ["LineProgress"]


class LineProgress(L.Callback):
    """Print a progress line at most every ``every_seconds`` of training (rank 0 only).

    Args:
        every_seconds: the shortest interval between two lines.
        label: the run's name at the start of each line (e.g. ``stage 2``).
        printer: where lines go (default :func:`print` with flush).
    """

    def __init__(self, every_seconds: float = 60.0, label: str = "train", printer=None) -> None:
        self.every_seconds = float(every_seconds)
        self.label = label
        self.printer = printer or (lambda line: print(line, flush=True))
        self._start = self._last = 0.0
        self._first_step = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = self._last = time.perf_counter()
        self._first_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        if now - self._last < self.every_seconds or not trainer.is_global_zero:
            return
        self._last = now
        self.printer(self.line(trainer, now))

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.printer(self.line(trainer, time.perf_counter()))

    def line(self, trainer, now: float) -> str:
        """``<label>: step k/N · loss x · s/step · elapsed`` for the trainer's current state."""
        step, total = trainer.global_step, trainer.max_steps
        done = max(step - self._first_step, 1)
        loss = trainer.callback_metrics.get("train/loss")
        parts = [f"{self.label}: step {step}" + (f"/{total}" if total and total > 0 else "")]
        if loss is not None:
            parts.append(f"loss {float(loss):.4f}")
        parts.append(f"{(now - self._start) / done:.2f} s/step")
        parts.append(f"{now - self._start:.0f} s")
        return " · ".join(parts)
