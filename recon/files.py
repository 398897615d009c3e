"""Small file helpers shared by the reconstruction branch and the ``vidllm`` package.

``recon`` is a leaf package (it never imports ``vidllm``), so the single implementation of these
lives here; :mod:`vidllm.io` re-exports the atomic writers and :mod:`vidllm.video` the image
suffixes and the sort key.

* :func:`atomic_write` / :func:`atomic_dir` — write to a temp file (folder) beside the target,
  then ``os.replace`` it, so a crash or kill never leaves a half-written output.
* :data:`IMAGE_SUFFIXES` / :func:`numeric_sort_key` — which files of a frames folder are images,
  and the order they are read in (``2.jpg`` before ``10.jpg``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "atomic_dir", "atomic_write", "numeric_sort_key"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
"""Suffixes (lower case) of the frame images read from a folder."""


def numeric_sort_key(path: str | os.PathLike) -> tuple:
    """Sort key that orders ``2.jpg`` before ``10.jpg`` (digit runs of the file name compared as integers)."""
    parts = re.split(r"(\d+)", Path(path).name)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str | None = "wb") -> Iterator:
    """Open a temp file next to ``path`` for writing; rename it onto ``path`` on success.

    The temp file is ``.<stem>.<random>.tmp<suffix>`` in the target's folder (created if missing),
    so writers that pick the format from the suffix (open3d, safetensors) still see it. On any
    exception (``BaseException``: a ``KeyboardInterrupt`` too) the temp file is removed and ``path``
    is left as it was.

    Usage::

        with atomic_write("out/scene.ply", None) as tmp_path:   # mode=None: yields the temp *path*
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
