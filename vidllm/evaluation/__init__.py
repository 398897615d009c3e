"""Evaluation runners behind ``vidllm eval`` (README "Evaluation protocols"): one deterministic clip per scene,
a predictor (the model, or any object with the same methods, e.g. an oracle in tests), and the
metrics of :mod:`vidllm.metrics`. Each runner returns ``(predictions, metrics)``; writing files
and printing tables lives in :mod:`vidllm.evaluation.outputs`."""

from vidllm.evaluation.clips import SceneClips
from vidllm.evaluation.predictor import ModelPredictor

__all__ = ["SceneClips", "ModelPredictor"]
