"""Safe file I/O shared by the CLI, tools and weights loading.

* :func:`atomic_write` — write to a temp file beside the target, then ``os.replace`` it, so a
  crash or kill never leaves a half-written output.
* :func:`load_state_dict` — load weights from ``.safetensors`` or from a torch pickle with
  ``torch.load(weights_only=True)`` only; a pickle that would execute code is refused with a
  :class:`~vidllm.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from recon.weights_file import read_weights_file
from vidllm.errors import CheckpointError

__all__ = ["atomic_write", "load_state_dict", "save_safetensors"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temp file next to ``path`` for writing; rename it onto ``path`` on success.

    Usage::

        with atomic_write("out/scene.ply") as tmp_path:   # mode=None: yields the temp *path*
            o3d.io.write_point_cloud(str(tmp_path), cloud)

        with atomic_write("out/metrics.json", "w") as f:   # otherwise: yields an open file
            json.dump(metrics, f)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    tmp_path = Path(tmp)
    try:
        if mode is None:
            os.close(fd)
            yield tmp_path
        else:
            with os.fdopen(fd, mode) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise



@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; on success it replaces ``path`` (an existing
    directory is removed first), on failure it is deleted and ``path`` is left as it was."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_safetensors(state_dict: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write tensors as safetensors atomically (tensors made contiguous, shared storage cloned)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().clone() for k, v in state_dict.items()}
    with atomic_write(path, mode=None) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_state_dict(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a flat ``{name: tensor}`` dict without ever unpickling arbitrary objects.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)``. Lightning checkpoints are unwrapped to their
    ``state_dict``; a ``{"model": {...}}`` wrapper is unwrapped too.

    Raises:
        CheckpointError: missing file, unsafe pickle, or no tensor dict inside.
    """
    path = Path(path)
    try:
        obj = read_weights_file(path, map_location)
    except ValueError as err:
        raise CheckpointError(str(err)) from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors (a state dict), got {type(obj).__name__}")
    return obj
