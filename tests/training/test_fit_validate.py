"""train.validate: fit runs Lightning's validation pass unless it is turned off."""

from dataclasses import replace

from vidllm.config import VidLLMConfig
from vidllm.training.fit import default_trainer_kwargs


def test_validate_false_limits_validation_batches_to_zero(tmp_path):
    cfg = VidLLMConfig()
    assert "limit_val_batches" not in default_trainer_kwargs(cfg, tmp_path)
    off = replace(cfg, train=replace(cfg.train, validate=False))
    assert default_trainer_kwargs(off, tmp_path)["limit_val_batches"] == 0
