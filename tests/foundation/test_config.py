"""Typed configs: every shipped YAML validates; bad keys and values name the key and the file."""

import dataclasses
from pathlib import Path

import pytest

from vidllm.config import VidLLMConfig, config_from_dict, field_docs, iter_fields, load_config, save_config
from vidllm.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
SHIPPED = sorted(
    p for p in CONFIG_DIR.rglob("*.yaml") if "strategies" not in p.parts
)  # strategies/ hold Trainer settings


def test_configs_exist():
    names = {p.name for p in SHIPPED}
    assert {"tiny.yaml", "vidllm_large.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert isinstance(cfg, VidLLMConfig)


def test_paper_scale_values():
    cfg = load_config(CONFIG_DIR / "vidllm_large.yaml")
    assert (cfg.encoder.hidden_size, cfg.encoder.num_layers) == (1024, 24)
    assert cfg.recon.aggregator.depth == 24
    assert cfg.cta.num_bridge_tokens == 16
    assert (cfg.data.num_frames, cfg.data.image_size) == (32, 518)
    assert cfg.recon.depth_head.intermediate_layers == [4, 11, 17, 23]


def test_unknown_key_names_key_and_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("encoder:\n  hidden_sise: 12\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*encoder\.hidden_sise"):
        load_config(bad)


def test_wrong_type_and_bad_choice_name_the_key(tmp_path):
    bad = tmp_path / "types.yaml"
    bad.write_text("data:\n  num_frames: many\n")
    with pytest.raises(ConfigError, match=r"types\.yaml.*data\.num_frames"):
        load_config(bad)
    bad.write_text("cta:\n  mode: bridges\n")
    with pytest.raises(ConfigError, match=r"types\.yaml.*cta\.mode"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not valid YAML"):
        bad.write_text("encoder: [1, 2\n")
        load_config(bad)


def test_overrides_and_free_form_dicts(tmp_path):
    cfg = load_config(CONFIG_DIR / "tiny.yaml", ["data.num_frames=4", "train.lr_multipliers.encoder=0.5"])
    assert cfg.data.num_frames == 4
    assert cfg.train.lr_multipliers == {"encoder": 0.5}
    with pytest.raises(ConfigError, match=r"command-line overrides.*llm\.nope"):
        load_config(CONFIG_DIR / "tiny.yaml", ["llm.nope=1"])


def test_defaults_layering(tmp_path):
    (tmp_path / "base.yaml").write_text("data:\n  num_frames: 5\n  batch_size: 3\n")
    (tmp_path / "top.yaml").write_text("defaults: [base.yaml]\ndata:\n  num_frames: 7\n")
    cfg = load_config(tmp_path / "top.yaml")
    assert (cfg.data.num_frames, cfg.data.batch_size) == (7, 3)


def test_save_load_round_trip(tmp_path):
    cfg = load_config(CONFIG_DIR / "tiny.yaml")
    save_config(cfg, tmp_path / "out" / "config.yaml")
    assert not list((tmp_path / "out").glob("*.tmp"))
    assert load_config(tmp_path / "out" / "config.yaml") == cfg
    assert config_from_dict(dataclasses.asdict(cfg)) == cfg


def test_every_field_has_help_text():
    missing = [key for key, _default, help_text in iter_fields(VidLLMConfig) if not help_text]
    assert not missing, f"config fields without a docstring: {missing}"
    assert "Token width" in field_docs(type(VidLLMConfig().encoder))["hidden_size"]
