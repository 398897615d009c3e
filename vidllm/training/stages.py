"""Which modules train in which stage (paper §3.4, Fig. 3) — the one place that decides freezing.

* Stage 1 (dual-teacher distillation): the shared ``encoder`` and the ``cta`` train; everything
  else is frozen (and not run).
* Stage 2 (joint optimisation): every module trains; inside the VL branch the LLM follows
  ``llm.finetune`` — ``lora``: only the adapters, ``frozen``: nothing, ``full``: everything.
"""

from __future__ import annotations

from torch import nn

__all__ = ["STAGE_MODULES", "trainable_modules", "apply_stage"]

STAGE_MODULES = {
    1: ("encoder", "cta"),
    2: ("encoder", "cta", "aggregator", "camera_head", "depth_head", "metric_depth", "vl"),
}

_LLM_PREFIX = "vl.lm.model."
NEVER_TRAINED = ("mask_token",)
"""Parameter-name endings that never train: DINOv2's mask token serves masked-image pre-training only
(it takes no part in the forward, so training it would also break DDP's used-parameter check)."""


def trainable_modules(stage: int) -> tuple[str, ...]:
    """Top-level module names of :class:`vidllm.model.VidLLM` that train in ``stage``."""
    if stage not in STAGE_MODULES:
        raise ValueError(f"train.stage must be 1 or 2, got {stage!r}")
    return STAGE_MODULES[stage]


def _llm_param_trains(name: str, finetune: str) -> bool:
    local = name[len(_LLM_PREFIX) :]
    if finetune == "full":
        return True
    if finetune == "frozen":
        return False
    return "lora_" in local


def apply_stage(model: nn.Module, stage: int, finetune: str) -> list[str]:
    """Set ``requires_grad`` of every parameter of ``model`` for ``stage``.

    Args:
        model: a :class:`vidllm.model.VidLLM`.
        stage: 1 or 2.
        finetune: ``llm.finetune`` (``lora`` / ``full`` / ``frozen``).
    Returns:
        the names of the trainable parameters.
    """
    modules = trainable_modules(stage)
    trainable = []
    for name, param in model.named_parameters():
        top = name.split(".", 1)[0]
        train = top in modules and not name.endswith(NEVER_TRAINED)
        if train and name.startswith(_LLM_PREFIX):
            train = _llm_param_trains(name, finetune)
        param.requires_grad_(train)
        if train:
            trainable.append(name)
    return trainable
