"""Shipped Trainer strategy files are LightningCLI ``class_path`` / ``init_args`` YAML of valid Trainer /
strategy arguments; DDP and FSDP build on CPU; bad files name the file and the key."""

from pathlib import Path

import pytest
import yaml
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

from vidllm.errors import ConfigError
from vidllm.training.strategies import build_strategy, read_trainer_config, transformer_block_classes

FILES = sorted((Path(__file__).resolve().parents[2] / "configs" / "strategies").glob("*.yaml"))
FILE = {p.name: p for p in FILES}


def test_all_kinds_shipped():
    paths = {read_trainer_config(p)["strategy"]["class_path"] for p in FILES}
    assert paths == {
        "lightning.pytorch.strategies.DDPStrategy",
        "lightning.pytorch.strategies.FSDPStrategy",
        "lightning.pytorch.strategies.DeepSpeedStrategy",
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_strategy_file_is_class_path_and_init_args(path):
    data = read_trainer_config(path)
    assert set(data["strategy"]) == {"class_path", "init_args"} and data["strategy"]["init_args"]


def test_ddp_file_is_what_lightning_cli_reads():
    """The Trainer parser LightningCLI builds (jsonargparse over ``lightning.Trainer``) takes ddp.yaml as is."""
    import lightning as L
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(L.Trainer, "trainer", skip={"logger", "callbacks", "plugins"}, fail_untyped=False)
    parsed = parser.parse_object({"trainer": yaml.safe_load(FILE["ddp.yaml"].read_text())}).trainer.strategy
    assert parsed.class_path == "lightning.pytorch.strategies.DDPStrategy"
    assert parsed.init_args.find_unused_parameters is False and parsed.init_args.gradient_as_bucket_view is True


def test_ddp_and_fsdp_build():
    ddp = build_strategy(read_trainer_config(FILE["ddp.yaml"])["strategy"])
    assert isinstance(ddp, DDPStrategy) and ddp._ddp_kwargs == {
        "find_unused_parameters": False,
        "gradient_as_bucket_view": True,
    }
    fsdp = build_strategy(read_trainer_config(FILE["fsdp.yaml"])["strategy"])
    assert type(fsdp) is FSDPStrategy
    assert len(transformer_block_classes()) >= 2
    policy = fsdp.kwargs["auto_wrap_policy"]  # the transformer_blocks shorthand, made a ModuleWrapPolicy by Lightning
    assert set(policy._module_classes) == transformer_block_classes()
    assert fsdp.kwargs["limit_all_gathers"] is True  # forwarded to FullyShardedDataParallel


def test_bare_class_name_and_plain_string(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("strategy: {class_path: DDPStrategy, init_args: {static_graph: true}}\nmax_epochs: 2\n")
    assert isinstance(build_strategy(read_trainer_config(good)["strategy"]), DDPStrategy)
    good.write_text("strategy: ddp\n")
    assert build_strategy(read_trainer_config(good)["strategy"]) == "ddp"


@pytest.mark.parametrize(
    "text, needles",
    [
        (
            "strategy: {class_path: lightning.pytorch.strategies.DDPStrategy, init_args: {find_unused: true}}\n",
            ["strategy.init_args", "find_unused", "DDPStrategy"],
        ),
        ("max_stepz: 3\n", ["max_stepz", "lightning.Trainer"]),
        ("strategy: {class_path: lightning.pytorch.strategies.HorovodStrategy}\n", ["strategy.class_path", "Horovod"]),
        ("strategy: {class_path: torch.nn.Linear}\n", ["strategy.class_path", "not a subclass"]),
        ("strategy: {init_args: {stage: 2}}\n", ["strategy needs class_path"]),
        ("strategy: {class_path: DDPStrategy, init_args: [1]}\n", ["strategy.init_args must be a mapping"]),
        ("strategy: {class_path: DDPStrategy, args: {static_graph: true}}\n", ["strategy needs class_path", "args"]),
    ],
)
def test_bad_files_name_the_file_and_the_key(tmp_path, text, needles):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_trainer_config(bad)
    message = str(err.value)
    assert "bad.yaml" in message and all(n in message for n in needles), message


def test_old_name_args_format_is_refused_with_its_translation(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("strategy:\n  name: fsdp\n  args:\n    sharding_strategy: FULL_SHARD\n")
    with pytest.raises(ConfigError) as err:
        read_trainer_config(old)
    message = str(err.value)
    assert "old.yaml" in message and "no longer read" in message
    assert "class_path: lightning.pytorch.strategies.FSDPStrategy" in message
    assert "init_args: {sharding_strategy: FULL_SHARD}" in message
