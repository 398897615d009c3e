"""The optimisation loop shared by both teachers: AdamW, warm-up + cosine learning rate, a step
and wall-clock budget, periodic held-out evaluation and a progress bar (on a terminal).

The cosine schedule runs over the *planned* number of steps: ``max_steps``, or fewer when the
time budget will end training first — after ``probe`` steps the planned total becomes
``min(max_steps, ⌊budget / seconds-per-step⌋)`` so the learning rate still decays to its floor.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from vidllm.progress import progress_bar
from vidllm.training.optim import build_optimizer, warmup_cosine

__all__ = ["StepBudget", "train_loop"]


class StepBudget:
    """At most ``max_steps`` steps and ``minutes`` of wall time (0 = unlimited); see the module docstring."""

    def __init__(self, max_steps: int, minutes: float, probe: int = 5) -> None:
        if max_steps < 1:
            raise ValueError(f"StepBudget: max_steps must be >= 1, got {max_steps}")
        self.max_steps, self.seconds, self.probe = max_steps, minutes * 60.0, probe
        self.start = time.perf_counter()
        self.planned = max_steps
        self.steps = 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def step_done(self) -> None:
        self.steps += 1
        if self.seconds > 0 and self.steps == self.probe:
            per_step = self.elapsed() / self.steps
            self.planned = max(self.steps + 1, min(self.max_steps, math.floor(self.seconds / per_step)))

    def finished(self) -> bool:
        return self.steps >= self.max_steps or (self.seconds > 0 and self.elapsed() >= self.seconds)


def train_loop(
    model: nn.Module,
    loss_fn: Callable[[int], dict[str, Tensor]],
    evaluate: Callable[[], dict[str, float]],
    *,
    max_steps: int,
    minutes: float,
    lr: float,
    weight_decay: float,
    warmup: int,
    grad_clip: float,
    eval_every: int,
    name: str,
    log: Callable[[str], None] = print,
    min_lr_ratio: float = 0.1,
) -> dict:
    """Train ``model`` on ``loss_fn(step) → {'loss': scalar, ...}``; returns the history.

    Returns:
        ``{"steps", "seconds", "losses": [float per step], "evals": [{"step", **metrics}], "final_terms": {...}}``
    """
    optimizer = build_optimizer(model, lr, weight_decay)
    budget = StepBudget(max_steps, minutes)
    losses: list[float] = []
    evals: list[dict] = []
    terms: dict[str, float] = {}
    model.train()
    bar = progress_bar(total=max_steps, desc=f"{name} teacher", unit="step", leave=False, dynamic_ncols=True)
    while not budget.finished():
        step = budget.steps
        scale = warmup_cosine(step, warmup, budget.planned, min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr * scale
        out = loss_fn(step)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise ValueError(f"{name} teacher: loss became {float(loss)} at step {step}; lower --lr or check the data")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        budget.step_done()
        losses.append(float(loss.detach()))
        terms = {k: float(v.detach()) for k, v in out.items() if isinstance(v, Tensor) and v.numel() == 1}
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if budget.steps % eval_every == 0 and not budget.finished():
            evals.append(_eval(model, evaluate, budget, losses, name, log))
    bar.close()
    evals.append(_eval(model, evaluate, budget, losses, name, log))
    return {"steps": budget.steps, "seconds": budget.elapsed(), "losses": losses, "evals": evals, "final_terms": terms}


def _eval(
    model: nn.Module, evaluate: Callable[[], dict[str, float]], budget: StepBudget, losses: list[float], name: str, log
) -> dict:
    model.eval()
    metrics = evaluate()
    model.train()
    recent = losses[-min(len(losses), 20) :]
    row = {
        "step": budget.steps,
        "seconds": round(budget.elapsed(), 1),
        "train_loss": sum(recent) / len(recent),
        **metrics,
    }
    shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float))
    log(
        f"[{name} teacher] step {budget.steps} ({row['seconds']:.0f} s): train loss {row['train_loss']:.4f}; held-out {shown}"
    )
    return row
