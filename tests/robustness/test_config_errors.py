"""Malformed configs: the message names the file and the key, in one line.
Extends tests/foundation/test_config.py with the cases it does not cover."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidllm.config import load_config
from vidllm.errors import ConfigError

pytestmark = pytest.mark.usefixtures("cli_logging")

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


@pytest.mark.parametrize(
    "text, match",
    [
        ("encoder: [1, 2\n", r"bad\.yaml: not valid YAML"),
        ("encoder:\n\thidden_size: 3\n", r"bad\.yaml: not valid YAML"),
        ("- 1\n- 2\n", r"bad\.yaml: top level must be a mapping, got list"),
        ("just a string\n", r"bad\.yaml: unknown config key 'just a string'"),
        ("nosuchgroup:\n  x: 1\n", r"bad\.yaml: unknown config key 'nosuchgroup'"),
        ("recon:\n  aggregator:\n    deepth: 3\n", r"bad\.yaml: unknown config key 'recon\.aggregator\.deepth'"),
        ("data: 5\n", r"bad\.yaml: invalid value for config key 'data'"),
        ("recon:\n  aggregator: fast\n", r"bad\.yaml: invalid value for config key 'recon\.aggregator'"),
        (
            "recon:\n  depth_head:\n    out_channels: abc\n",
            r"bad\.yaml: invalid value for config key 'recon\.depth_head\.out_channels'",
        ),
        (
            "recon:\n  depth_head:\n    out_channels: [8, x, 16, 16]\n",
            r"bad\.yaml: invalid value for config key 'recon\.depth_head\.out_channels",
        ),
        ("encoder:\n  hidden_size: 1.5\n", r"bad\.yaml: invalid value for config key 'encoder\.hidden_size'"),
        ("train:\n  lr: fast\n", r"bad\.yaml: invalid value for config key 'train\.lr'"),
        ("data:\n  tasks: qa\n", r"bad\.yaml: invalid value for config key 'data\.tasks'"),
        ("defaults: base.yaml\n", r"bad\.yaml: 'defaults' must be a list"),
        ("defaults: [missing.yaml]\n", r"bad\.yaml: 'defaults' names 'missing\.yaml', not found"),
    ],
)
def test_bad_yaml_names_file_and_key_in_one_line(tmp_path, text, match):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=match) as err:
        load_config(bad)
    assert "\n" not in str(err.value)


def test_error_in_a_defaults_layer_names_that_layer(tmp_path):
    (tmp_path / "base.yaml").write_text("data:\n  num_framez: 3\n")
    (tmp_path / "top.yaml").write_text("defaults: [base.yaml]\n")
    with pytest.raises(ConfigError, match=r"data\.num_framez"):
        load_config(tmp_path / "top.yaml")
    (tmp_path / "base.yaml").write_text("data: [1\n")
    with pytest.raises(ConfigError, match=r"base\.yaml: not valid YAML"):
        load_config(tmp_path / "top.yaml")
    (tmp_path / "loop.yaml").write_text("defaults: [loop.yaml]\n")
    with pytest.raises(ConfigError, match=r"loop\.yaml: 'defaults' includes itself"):
        load_config(tmp_path / "loop.yaml")


@pytest.mark.parametrize(
    "override, match",
    [
        ("data.num_frames=abc", r"command-line overrides: invalid value for config key 'data\.num_frames'"),
        ("data=3", r"command-line overrides: invalid value for config key 'data'"),
        ("encoder.hidden_sise=3", r"command-line overrides: unknown config key 'encoder\.hidden_sise'"),
    ],
)
def test_bad_overrides_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(TINY, [override])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_bad_trainer_config_file_is_one_line(tmp_path, capsys):
    from vidllm.cli import main

    (tmp_path / "trainer.yaml").write_text("strategy: [ddp\n")
    code = main(
        [
            "fit",
            "--config",
            str(TINY),
            "--trainer_config",
            str(tmp_path / "trainer.yaml"),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "trainer.yaml" in err[0], err
