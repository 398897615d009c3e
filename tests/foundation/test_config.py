"""Typed configs: every shipped YAML validates; bad keys and values name the key and the file; every
choice field is a ``Literal`` that the YAML loader, the dataclass and ``vidllm config --list`` agree on."""

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from cta.config import CTA_MODE_ALIASES, CTA_MODES, CTAConfig, CTAMode, DeprecatedCTAMode
from vidllm.commands.config_cmd import options
from vidllm.config import VidLLMConfig, config_from_dict, load_config, save_config
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


OPTIONS = {key: (default, help_text, choices) for key, default, help_text, choices in options()}
CHOICE_FIELDS = sorted(key for key, (_default, _help, choices) in OPTIONS.items() if choices)


def _leaf_types(cls=VidLLMConfig, prefix=""):
    """``{dotted_key: type hint}`` of every leaf field, read from the dataclasses themselves."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(_leaf_types(hints[f.name], f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = hints[f.name]
    return out


def _nested(key: str, value) -> dict:
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def _get(cfg, key: str):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def test_every_field_has_help_text():
    missing = [key for key, (_default, help_text, _choices) in OPTIONS.items() if not help_text]
    assert not missing, f"config fields without a docstring: {missing}"
    assert "Token width" in OPTIONS["encoder.hidden_size"][1]


def test_listing_covers_every_field_with_its_default():
    leaves = _leaf_types()
    assert list(OPTIONS) == list(leaves)  # declaration order, nothing missing, nothing extra
    defaults = VidLLMConfig()
    assert all(OPTIONS[key][0] == _get(defaults, key) for key in leaves)


def test_choice_fields_are_literal_types():
    """Each set of choices is one Literal alias; the listing's choices are that alias's values."""
    literal = {}
    for key, hint in _leaf_types().items():
        inner = typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint
        if typing.get_origin(inner) is typing.Literal:
            literal[key] = typing.get_args(inner)
    assert sorted(literal) == CHOICE_FIELDS
    expected = {
        "cta.mode",
        "cta.scope",
        "encoder.kind",
        "recon.camera_head.fov_activation",
        "metric_depth.normalization",
        "vl.depth_sample",
        "vl.pos_embed",
        "vl.grounding.mode",
        "vl.grounding.query",
        "vl.readout.hops",
        "llm.finetune",
        "llm.dtype",
        "data.source",
        "data.resize_side",
        "data.frame_sampling",
        "data.answer_sampling",
        "data.tasks",
        "data.synthetic_trajectory",
        "data.grounding_source",
        "train.stage",
        "train.distill.teachers",
        "attention_backend",
    }
    assert set(CHOICE_FIELDS) == expected
    assert all(OPTIONS[key][2] == literal[key] for key in CHOICE_FIELDS)
    assert CTA_MODES == typing.get_args(CTAMode) and set(CTA_MODE_ALIASES) == set(typing.get_args(DeprecatedCTAMode))


@pytest.mark.parametrize("key", CHOICE_FIELDS)
def test_bad_choice_names_key_and_choices(key, tmp_path):
    """YAML (omegaconf) and Python construction (__post_init__) both name the key and the allowed values."""
    default, _help, choices = OPTIONS[key]
    bogus = [choices[0], "bogus"] if isinstance(default, list) else "bogus"
    bad = tmp_path / "choice.yaml"
    bad.write_text(yaml.safe_dump(_nested(key, bogus)))
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    message = str(err.value)
    assert "choice.yaml" in message and key in message and str(list(choices)) in message, message
    owner_key, _, field_name = key.rpartition(".")
    owner = _get(VidLLMConfig(), owner_key) if owner_key else VidLLMConfig()
    with pytest.raises(ValueError) as err:
        dataclasses.replace(owner, **{field_name: bogus})
    message = str(err.value)
    canonical = [c for c in choices if not (key == "cta.mode" and c in CTA_MODE_ALIASES)]  # aliases: not advertised
    assert key in message and "bogus" in message and all(str(c) in message for c in canonical), message


def test_each_choice_loads():
    for key in CHOICE_FIELDS:
        default, _help, choices = OPTIONS[key]
        for choice in choices:
            if key == "cta.mode" and choice in CTA_MODE_ALIASES:
                continue  # the deprecated alias loads as its canonical mode (tests/cta)
            value = [choice] if isinstance(default, list) else choice
            data = _nested(key, value)
            if key == "data.tasks":
                data["data"]["task_weights"] = [1.0]
            assert _get(config_from_dict(data, source=key), key) == value


def test_deprecated_cta_mode_still_loads_from_yaml(tmp_path):
    (tmp_path / "old.yaml").write_text("cta:\n  mode: passthrough\n")
    with pytest.warns(FutureWarning, match="deprecated alias of 'none'"):
        assert load_config(tmp_path / "old.yaml").cta == CTAConfig(mode="none")
