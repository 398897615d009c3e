"""Reading a weights file without ever unpickling arbitrary objects (safetensors, or
``torch.load(weights_only=True)``), and finding the state dict inside what was read; shared by
the VGGT loader and :func:`vidllm.io.load_state_dict` (``recon`` is a leaf package, so the single
implementation lives here)."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["read_weights_file", "strip_prefix", "unwrap_state_dict"]

WRAPPER_KEYS = ("state_dict", "model")
"""Keys under which checkpoints nest their state dict, tried in this order: Lightning's
``{"state_dict": ...}``, then a ``{"model": ..., "optimizer": ...}`` training bundle."""

DDP_PREFIX = "module."
"""Key prefix ``DistributedDataParallel`` / ``DataParallel`` add when a wrapped model is saved."""


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


def unwrap_state_dict(obj) -> dict[str, Tensor]:
    """The flat ``{name: tensor}`` state dict inside a loaded checkpoint object.

    Rules, applied in this order:

    1. Wrappers: for each key of :data:`WRAPPER_KEYS` in turn (``state_dict``, then ``model``),
       when ``obj`` is a dict whose value under that key is a dict, descend into it — so
       ``{"state_dict": sd}``, ``{"model": sd}`` and ``{"state_dict": {"model": sd}}`` all give
       ``sd``. A dict that already holds tensors at its top level is a state dict, never a
       wrapper, and is kept as it is (a VGGT checkpoint's ``aggregator.*`` tensors, say).
    2. The result must be a dict whose values are all tensors.
    3. The :data:`DDP_PREFIX` (``module.``) is removed from the keys that have it.

    Other prefixes (a Lightning module's ``model.`` attribute) are the caller's business: see
    :func:`strip_prefix`.

    Raises:
        ValueError: ``"expected a dict of tensors (a state dict), got <type>"`` — the caller adds the file name.
    """
    for key in WRAPPER_KEYS:
        if (
            isinstance(obj, dict)
            and isinstance(obj.get(key), dict)
            and not any(isinstance(v, Tensor) for v in obj.values())
        ):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"expected a dict of tensors (a state dict), got {type(obj).__name__}")
    return {k.removeprefix(DDP_PREFIX): v for k, v in obj.items()}


def strip_prefix(state_dict: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries of ``state_dict`` under ``prefix`` (e.g. ``"model."``), with the prefix removed; the others are dropped."""
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
