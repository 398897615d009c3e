"""Progress bars are quiet when standard error is not a terminal."""

from __future__ import annotations

import io

from vidllm import progress


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_no_bar_output_when_not_a_terminal(monkeypatch):
    stream = _Stream(tty=False)
    monkeypatch.setattr(progress.sys, "stderr", stream)
    assert not progress.terminal_progress()
    for _ in progress.progress_bar(range(50), desc="quiet", file=stream):
        pass
    assert stream.getvalue() == ""


def test_bar_shown_on_a_terminal_unless_disabled(monkeypatch):
    stream = _Stream(tty=True)
    monkeypatch.setattr(progress.sys, "stderr", stream)
    assert progress.terminal_progress()
    for _ in progress.progress_bar(range(5), desc="shown", file=stream):
        pass
    assert "shown" in stream.getvalue()
    off = _Stream(tty=True)
    for _ in progress.progress_bar(range(5), desc="off", enabled=False, file=off):
        pass
    assert off.getvalue() == ""


def test_library_bars_quiet_only_off_a_terminal(monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")  # recorded, so the test's value is undone afterwards
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS")
    monkeypatch.setattr(progress.sys, "stderr", _Stream(tty=True))
    progress.quiet_library_bars()
    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in progress.os.environ
    monkeypatch.setattr(progress.sys, "stderr", _Stream(tty=False))
    progress.quiet_library_bars()
    assert progress.os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
