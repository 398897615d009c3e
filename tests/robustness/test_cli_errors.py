"""``vidllm <cmd>`` with bad input: one clear line naming the problem, a
non-zero exit, no traceback — unless ``--debug``, which shows it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vidllm.cli import main

pytestmark = pytest.mark.usefixtures("cli_logging")

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "tiny.yaml")


def _one_error_line(err: str, command: str) -> str:
    """The single ``vidllm <command>: error: ...`` line of stderr (other lines may be log records)."""
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith(f"vidllm {command}: error: ") and lines[0].endswith(
        "(run with --debug for the traceback)"
    )
    return lines[0]


@pytest.fixture()
def files(tmp_path):
    (tmp_path / "bad.yaml").write_text("data:\n  num_framez: 3\n")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("user data")
    return tmp_path


CASES = {
    "config-missing-file": (["config", "{t}/missing.yaml"], "config file not found: {t}/missing.yaml"),
    "config-unknown-key": (["config", "{t}/bad.yaml"], "{t}/bad.yaml: unknown config key 'data.num_framez'"),
    "config-bad-override": (
        ["config", TINY, "--set", "data.num_frames=abc"],
        "invalid value for config key 'data.num_frames'",
    ),
    "fit-missing-config": (["fit", "--config", "{t}/missing.yaml", "--out", "{t}/run"], "config file not found"),
    "fit-bad-value": (["fit", "--config", TINY, "--data.num_frames", "abc", "--out", "{t}/run"], "data.num_frames"),
    "fit-stray-argument": (["fit", "--config", TINY, "stray", "--out", "{t}/run"], "unrecognized arguments: stray"),
    "fit-nothing-to-resume": (
        ["fit", "--config", TINY, "--ckpt_path", "last", "--out", "{t}/run", "--data.root", "{t}/data"],
        "nothing to resume",
    ),
    "fit-missing-ckpt": (
        ["fit", "--config", TINY, "--ckpt_path", "{t}/nope.ckpt", "--out", "{t}/run", "--data.root", "{t}/data"],
        "nope.ckpt: no such checkpoint",
    ),
    "validate-bad-trainer-key": (
        ["validate", "--config", TINY, "--trainer.max_stepz", "1", "--out", "{t}/run"],
        "max_stepz",
    ),
    "synth-non-empty-out": (["synth", "--out", "{t}/full", "--scenes", "1"], "not empty; pass --force"),
    "synth-zero-scenes": (["synth", "--out", "{t}/new", "--scenes", "0"], "num_scenes must be >= 1"),
    "teachers-missing-config": (["teachers", "--config", "{t}/missing.yaml", "--out", "{t}/teachers"], "missing.yaml"),
    "eval-missing-checkpoint": (
        ["eval", "scanrefer", "--checkpoint", "{t}/nope", "--data", "{t}", "--out", "{t}/eval"],
        "--checkpoint {t}/nope: not a model directory",
    ),
    "export-pointcloud-missing-vggt": (
        ["export-pointcloud", "--vggt", "{t}/nope.pt", "--video", "{t}/full", "--out", "{t}/x.ply", "--device", "cpu"],
        "nope.pt",
    ),
    "export-pointcloud-bad-chunks": (
        ["export-pointcloud", "--vggt", "{t}/nope.pt", "--video", "{t}/full", "--out", "{t}/x.ply", "--overlap", "2"],
        "--overlap and --chunk-layout need --chunk-size",
    ),
    "export-checkpoint-no-run-config": (
        ["export-checkpoint", "{t}/run/checkpoints/last.ckpt", "--out", "{t}/exported"],
        "no config.yaml for {t}/run/checkpoints/last.ckpt",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_non_zero_exit(files, capsys, case):
    argv, expected = CASES[case]
    argv = [a.format(t=files) for a in argv]
    code = main(argv)
    line = _one_error_line(capsys.readouterr().err, argv[0])
    assert code == 1
    assert expected.format(t=files) in line, line


def test_failed_commands_leave_no_partial_output(files, capsys):
    assert main(["synth", "--out", str(files / "new"), "--scenes", "0"]) == 1
    assert main(["synth", "--out", str(files / "full"), "--scenes", "1"]) == 1
    for case in ("eval-missing-checkpoint", "export-pointcloud-missing-vggt", "export-checkpoint-no-run-config"):
        assert main([a.format(t=files) for a in CASES[case][0]]) == 1
    capsys.readouterr()
    assert not [p for p in ("eval", "x.ply", "x.cameras.json", "x.png", "exported") if (files / p).exists()]
    assert not (files / "new").exists()
    assert not list(files.glob(".*tmp*"))
    assert [p.name for p in (files / "full").iterdir()] == ["keep.txt"]


def test_usage_errors_exit_2_without_traceback(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["synth"])  # --out is required
    assert exc.value.code == 2
    assert "--out" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2


def _cli(*argv, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "vidllm.cli", *argv], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def test_debug_shows_the_traceback_and_plain_run_does_not(tmp_path):
    plain = _cli("config", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert plain.returncode == 1 and plain.stdout == ""
    assert plain.stderr.strip().splitlines() == [
        f"vidllm config: error: config file not found: {tmp_path / 'missing.yaml'} (run with --debug for the traceback)"
    ]
    debug = _cli("--debug", "config", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert debug.returncode != 0
    assert (
        "Traceback (most recent call last)" in debug.stderr
        and "vidllm.errors.ConfigError: config file not found" in debug.stderr
    )


@pytest.mark.parametrize(
    "exc", [RuntimeError("shapes do not line up"), KeyError("model.layer.7"), TypeError("bad operand")]
)
def test_unexpected_errors_propagate_with_their_traceback(monkeypatch, capsys, exc):
    """A bug inside a command is not turned into a one-line 'error:' message (nor a plain exit 1)."""
    import vidllm.commands.config_cmd as config_cmd

    def broken(args):
        raise exc

    monkeypatch.setattr(config_cmd, "run", broken)
    with pytest.raises(type(exc)) as caught:
        main(["config", TINY])
    assert caught.value is exc
    assert "error:" not in capsys.readouterr().err


def test_unexpected_error_shows_a_traceback_from_the_console(tmp_path):
    script = (
        "import sys, vidllm.commands.config_cmd as c\n"
        "def run(args):\n    raise RuntimeError('internal bug in a command')\n"
        "c.run = run\n"
        "from vidllm.cli import main\n"
        f"sys.exit(main(['config', {TINY!r}]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env
    )
    assert res.returncode == 1
    assert "Traceback (most recent call last)" in res.stderr and "RuntimeError: internal bug in a command" in res.stderr
    assert "(run with --debug for the traceback)" not in res.stderr


def test_user_errors_raised_inside_a_command_stay_one_line(monkeypatch, capsys):
    import vidllm.commands.config_cmd as config_cmd
    from vidllm.errors import DataError

    def broken(args):
        raise DataError("scans/scene0000_00: missing field 'pose'")

    monkeypatch.setattr(config_cmd, "run", broken)
    assert main(["config", TINY]) == 1
    assert "missing field 'pose'" in _one_error_line(capsys.readouterr().err, "config")
