"""Shipped Trainer strategy files are valid Trainer / strategy arguments; DDP builds on CPU."""

from pathlib import Path

import pytest
from lightning.pytorch.strategies import DDPStrategy

from vidllm.errors import ConfigError
from vidllm.training.strategies import build_strategy, read_trainer_config, transformer_block_classes

FILES = sorted((Path(__file__).resolve().parents[2] / "configs" / "strategies").glob("*.yaml"))


def test_all_kinds_shipped():
    names = {read_trainer_config(p)["strategy"]["name"] for p in FILES}
    assert names == {"ddp", "fsdp", "deepspeed"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_strategy_file_is_valid(path):
    data = read_trainer_config(path)
    assert isinstance(data["strategy"], dict)


def test_ddp_and_fsdp_build(tmp_path):
    assert isinstance(
        build_strategy(read_trainer_config(FILES[[p.name for p in FILES].index("ddp.yaml")])["strategy"]), DDPStrategy
    )
    fsdp = build_strategy(read_trainer_config(FILES[[p.name for p in FILES].index("fsdp.yaml")])["strategy"])
    assert type(fsdp).__name__ == "FSDPStrategy"
    assert len(transformer_block_classes()) >= 2


def test_bad_files_name_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy: {name: ddp, args: {find_unused: true}}\n")
    with pytest.raises(ConfigError, match="find_unused"):
        read_trainer_config(bad)
    bad.write_text("max_stepz: 3\n")
    with pytest.raises(ConfigError, match="max_stepz"):
        read_trainer_config(bad)
    bad.write_text("strategy: {name: horovod}\n")
    with pytest.raises(ConfigError, match="horovod"):
        read_trainer_config(bad)
