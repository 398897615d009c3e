"""Reading a weights file without ever unpickling arbitrary objects (safetensors, or
``torch.load(weights_only=True)``); shared by the VGGT loader and :func:`vidllm.io.load_state_dict`."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

__all__ = ["read_weights_file"]


def _first_line(err: BaseException) -> str:
    """First line of an exception's message, or its type name when the message is empty."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_weights_file(path: str | Path, map_location: str | torch.device = "cpu"):
    """The object stored in a ``.safetensors`` file (a tensor dict) or a torch file (tensors and plain containers only).

    Raises:
        ValueError: ``"<path>: ..."`` — missing file, bad safetensors header, a pickle that holds
        Python objects beyond tensors (refused: loading it could run code), unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device=str(map_location))
        except Exception as err:  # safetensors raises its own SafetensorError on bad headers
            raise ValueError(f"{path}: not a valid safetensors file ({_first_line(err)})") from None
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path}: refused to load — the file contains Python objects beyond tensors, and loading it "
            f"could run code ({_first_line(err)}). Convert it to safetensors from a trusted environment."
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"{path}: not a readable torch checkpoint ({_first_line(err)})") from None
