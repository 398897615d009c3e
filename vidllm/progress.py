"""Progress bars that stay quiet when output is not a terminal.

Every bar of the package comes from :func:`progress_bar`; Lightning's own bar follows
:func:`terminal_progress` (``Trainer(enable_progress_bar=...)``). A log file or a CI console gets the
periodic one-line summaries the callers print instead of thousands of carriage-return updates.
"""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

__all__ = ["progress_bar", "terminal_progress", "quiet_library_bars"]


def terminal_progress() -> bool:
    """True when standard error is an interactive terminal (where a live bar is readable)."""
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs) -> tqdm:
    """A tqdm bar that is shown only when ``enabled`` and standard error is a terminal.

    Args:
        iterable: what to iterate over (or None with ``total=`` for manual ``update``).
        enabled: the caller's switch (e.g. a ``progress`` argument); False never shows a bar.
        kwargs: passed to :class:`tqdm.tqdm` (``total``, ``desc``, ``unit``, ...).
    """
    return tqdm(iterable, disable=not (enabled and terminal_progress()), **kwargs)


def quiet_library_bars() -> None:
    """Turn off the Hugging Face libraries' own bars ("Loading weights", "Writing model shards") when standard
    error is not a terminal; call before transformers is imported (it reads ``HF_HUB_DISABLE_PROGRESS_BARS`` then)."""
    if not terminal_progress():
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
