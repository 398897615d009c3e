"""``tools/*.py``: thin wrappers of ``vidllm`` subcommands, run as scripts of an installed package."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = sorted((ROOT / "tools").glob("*.py"))
COMMANDS = {
    "eval_scanrefer": ["eval", "scanrefer"],
    "eval_qa": ["eval", "scanqa"],
    "eval_scan2cap": ["eval", "scan2cap"],
    "eval_recon": ["eval", "recon"],
    "export_pointcloud": ["export-pointcloud"],
    "export_checkpoint": ["export-checkpoint"],
}
"""Each tool → the ``vidllm`` arguments it puts before its own."""


def test_every_tool_is_listed():
    assert sorted(p.stem for p in TOOLS) == sorted(COMMANDS)


@pytest.mark.parametrize("path", TOOLS, ids=lambda p: p.name)
def test_no_tool_edits_sys_path(path):
    assert "sys.path" not in path.read_text()


@pytest.mark.parametrize("path", TOOLS, ids=lambda p: p.name)
def test_tool_calls_main_with_its_subcommand(path):
    """The wrapper's one statement: ``raise SystemExit(main([*subcommand, *sys.argv[1:]]))``."""
    tree = ast.parse(path.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "main"]
    assert len(calls) == 1
    words = [e.value for e in calls[0].args[0].elts if isinstance(e, ast.Constant)]
    assert words == COMMANDS[path.stem]
    assert ast.get_docstring(tree).count("python tools/") == 1  # the usage line


def _run_tool(name: str, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / f"{name}.py"), *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )


def test_eval_scanrefer_wrapper_help_is_the_subcommand_help():
    res = _run_tool("eval_scanrefer", "--help")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("usage: vidllm eval scanrefer")
    assert "--proposals" in res.stdout and "--task {scanrefer,multi3drefer}" in res.stdout


def test_wrapper_errors_follow_the_cli_policy(tmp_path):
    """One ``vidllm <command>: error:`` line naming the path, exit 1, no traceback."""
    res = _run_tool(
        "export_checkpoint", str(tmp_path / "run" / "checkpoints" / "nope.ckpt"), "--out", str(tmp_path / "x")
    )
    assert res.returncode == 1 and "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and lines[0].startswith("vidllm export-checkpoint: error: ") and "config.yaml" in lines[0]
    assert not (tmp_path / "x").exists()
