"""Atomic Lightning checkpoints: write to a temp file beside the target, fsync, then rename.

Lightning's default ``TorchCheckpointIO`` truncates the target and writes into it, so a kill
while saving leaves a corrupt ``last.ckpt``. Here the old file stays intact until the new one is
complete. Loading uses ``torch.load(weights_only=True)`` semantics for the model weights through
:func:`vidllm.io.load_state_dict` where the package reads checkpoints itself; Lightning's own
resume path (``--ckpt_path``) reads the files this class writes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from vidllm.io import atomic_write

__all__ = ["AtomicCheckpointIO"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose ``save_checkpoint`` replaces the file atomically."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}")
        with atomic_write(Path(path), "wb") as handle:
            torch.save(checkpoint, handle)
