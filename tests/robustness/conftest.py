"""Fixtures of the robustness tests."""

from __future__ import annotations

import logging
import sys

import pytest


class _CurrentStderr:
    """A stream that always writes to the ``sys.stderr`` of the moment."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@pytest.fixture()
def cli_logging(monkeypatch):
    """Log handlers that write to the current ``sys.stderr``, for tests calling ``vidllm.cli.main``.

    ``main`` calls ``logging.basicConfig`` and Lightning adds its own ``StreamHandler``; both bind
    the ``sys.stderr`` of the moment. Under ``capsys`` that stream is closed after the test, and a
    later test's log records would print "--- Logging error ---" tracebacks that are not the CLI's
    output. Here every stream handler follows ``sys.stderr`` for the test's duration.
    """
    monkeypatch.setattr(logging.root, "handlers", [])
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if type(handler) is logging.StreamHandler:
                monkeypatch.setattr(handler, "stream", _CurrentStderr())
    yield
