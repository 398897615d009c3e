"""Where the shipped configs live, in a source checkout and in an installed (non-editable) package.

The YAML files under the repository's ``configs/`` are the source of truth. Building a wheel copies
them into the package as ``vidllm/resources/configs/`` (``setup.py``'s ``build_py``), so an
installed package finds the stage defaults (``stage1.yaml``, ``stage2.yaml``), ``demo.yaml``,
``tiny.yaml`` and the paper-scale, ablation, baseline and strategy configs without the checkout.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from vidllm.errors import ConfigError

__all__ = ["config_dir", "shipped_config", "find_config"]

_PACKAGED = ("resources", "configs")


def config_dir() -> Path:
    """The folder of the shipped configs: the package's ``resources/configs`` when installed, else the
    checkout's ``configs/`` beside the package. Raises :class:`ConfigError` when neither exists."""
    packaged = resources.files("vidllm").joinpath(*_PACKAGED)
    if packaged.is_dir():
        return Path(str(packaged))
    source = Path(__file__).resolve().parents[1] / "configs"
    if source.is_dir():
        return source
    raise ConfigError(
        f"the shipped configs are missing: neither {packaged} (installed package) nor {source} (source checkout) exists"
    )


def shipped_config(relative: str) -> Path:
    """A shipped config by its path relative to the config folder (``stage2.yaml``, ``ablations/wo_cta.yaml``);
    a missing file is an error naming the path."""
    path = config_dir() / relative
    if not path.is_file():
        raise ConfigError(f"shipped config {relative!r} not found: {path} does not exist")
    return path


def find_config(path: str | os.PathLike) -> Path:
    """``path`` if it exists; else, for a relative path naming a shipped config (``configs/tiny.yaml`` or
    ``tiny.yaml``), the shipped copy — so the commands of the README work from an installed package.
    Otherwise ``path`` unchanged (the caller reports it missing)."""
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    parts = path.parts[1:] if path.parts[:1] == ("configs",) else path.parts
    if not parts:
        return path
    try:
        candidate = config_dir().joinpath(*parts)
    except ConfigError:
        return path
    return candidate if candidate.is_file() else path
