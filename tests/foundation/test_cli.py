"""The console entry point: subcommands listed, one-line errors, non-zero exit on bad input."""

import subprocess
import sys
from pathlib import Path

from vidllm.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]


def test_console_script_help_lists_subcommands():
    out = subprocess.run(["vidllm", "--help"], capture_output=True, text=True, check=True).stdout
    for name in COMMANDS:
        assert name in out


def test_packages_import():
    subprocess.run([sys.executable, "-c", "import vidllm, cta, recon, vl"], check=True)


def test_config_command_prints_and_validates(capsys):
    assert main(["config", str(ROOT / "configs" / "tiny.yaml")]) == 0
    assert "hidden_size: 64" in capsys.readouterr().out


def test_config_list_prints_key_default_choices_and_help(capsys):
    """``vidllm config --list``: one line per config field, read off ``vidllm fit``'s parser."""
    from vidllm.commands.config_cmd import options

    assert main(["config", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(list(options()))
    by_key = {line.split()[0]: line for line in lines}
    assert by_key["data.num_frames"].split()[1] == "32" and "Frames sampled per clip" in by_key["data.num_frames"]
    mode = by_key["cta.mode"].split(None, 3)
    assert mode[1] == "'bridge'" and mode[2].startswith("{bridge,none,") and mode[3].startswith("Variant:")
    assert "{1,2}" in by_key["train.stage"] and "{recon,qa,sqa,grounding,caption}" in by_key["data.tasks"]


def test_bad_config_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("vl:\n  voxel: 1\n")
    assert main(["config", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "vl.voxel" in err[0] and "bad.yaml" in err[0]


def test_unknown_command_exits_2(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    test_cmd = [line for line in ci.splitlines() if line.startswith("python -m pytest")]
    assert test_cmd, ".ci/run has no pytest line"
    assert f'pip install -e ".[dev]" && {test_cmd[-1]}' in readme
