"""Safe file I/O shared by the CLI and weights loading.

* :func:`atomic_write` / :func:`atomic_dir` — write to a temp file (folder) beside the target, then
  ``os.replace`` it, so a crash or kill never leaves a half-written output. Implemented once in
  :mod:`recon.files` (``recon`` is a leaf package and writes atomically too) and re-exported here.
* :func:`load_state_dict` — load weights from ``.safetensors`` or from a torch pickle with
  ``torch.load(weights_only=True)`` only; a pickle that would execute code is refused with a
  :class:`~vidllm.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from recon.files import atomic_dir, atomic_write
from recon.weights_file import read_weights_file, strip_prefix, unwrap_state_dict
from vidllm.errors import CheckpointError

__all__ = ["atomic_dir", "atomic_write", "load_state_dict", "save_safetensors", "strip_prefix"]


def save_safetensors(
    state_dict: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> None:
    """Write tensors as safetensors atomically (tensors made contiguous, shared storage cloned)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().clone() for k, v in state_dict.items()}
    with atomic_write(path, mode=None) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_state_dict(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a flat ``{name: tensor}`` dict without ever unpickling arbitrary objects.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)``. The state dict is found with
    :func:`recon.weights_file.unwrap_state_dict` (shared with the VGGT loader): a Lightning
    ``{"state_dict": ...}`` and a ``{"model": ...}`` wrapper are unwrapped, a DDP ``module.`` key
    prefix is removed.

    Raises:
        CheckpointError: missing file, unsafe pickle, or no tensor dict inside.
    """
    path = Path(path)
    try:
        obj = read_weights_file(path, map_location)
    except ValueError as err:
        raise CheckpointError(str(err)) from None
    try:
        return unwrap_state_dict(obj)
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None
