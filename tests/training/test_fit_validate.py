"""train.validate: fit runs Lightning's validation pass unless it is turned off."""

from dataclasses import replace

from vidllm.commands.fit_cmd import default_trainer_kwargs
from vidllm.config import VidLLMConfig


def test_validate_false_limits_validation_batches_to_zero(tmp_path):
    cfg = VidLLMConfig()
    assert "limit_val_batches" not in default_trainer_kwargs(cfg, tmp_path)
    off = replace(cfg, train=replace(cfg.train, validate=False))
    assert default_trainer_kwargs(off, tmp_path)["limit_val_batches"] == 0
