"""The model and the evaluation clips a ``vidllm eval`` task runs on."""

from __future__ import annotations

import argparse
import dataclasses

from vidllm.errors import VidLLMError

__all__ = ["load_pipeline_and_clips"]


def load_pipeline_and_clips(args: argparse.Namespace, tasks: list[str], grounding_source: str | None = None):
    """``VidLLMPipeline.from_pretrained(args.checkpoint)`` (device ``args.device``, compute dtype ``args.dtype``) and
    the :class:`~vidllm.evaluation.clips.SceneClips` of ``args.split`` under ``args.data`` with the ``tasks``'
    annotations (``grounding_source``: 'scanrefer' or 'multi3drefer' for the grounding records).

    Raises:
        VidLLMError: ``args.checkpoint`` is not a directory (nothing is read or written).
    """
    from vidllm.api import VidLLMPipeline
    from vidllm.evaluation.clips import SceneClips, eval_data_config

    if not args.checkpoint.is_dir():
        raise VidLLMError(
            f"--checkpoint {args.checkpoint}: not a model directory (expected config.yaml + model.safetensors)"
        )
    pipeline = VidLLMPipeline.from_pretrained(args.checkpoint, device=args.device, dtype=args.dtype)
    cfg = eval_data_config(pipeline.config.data, args.data, args.frames)
    if grounding_source:
        cfg = dataclasses.replace(cfg, grounding_source=grounding_source)
    return pipeline, SceneClips(cfg, args.split, tasks)
