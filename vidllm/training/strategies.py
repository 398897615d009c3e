"""Trainer settings files (``configs/strategies/*.yaml``): multi-device strategies for GPU clusters.

A file holds ``lightning.Trainer`` arguments; ``strategy`` may be a plain string or
``{name: ddp|fsdp|deepspeed, args: {...}}``, turned into the Lightning strategy object here (FSDP's
``auto_wrap_policy: transformer_blocks`` wraps every transformer block class of the model).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import yaml

from vidllm.errors import ConfigError

__all__ = ["STRATEGIES", "read_trainer_config", "build_strategy", "transformer_block_classes"]

# Extra keyword arguments a strategy forwards to the torch wrapper it builds.
FORWARDED = {
    "ddp": "torch.nn.parallel.DistributedDataParallel",
    "fsdp": "torch.distributed.fsdp.FullyShardedDataParallel",
}
STRATEGIES = {
    "ddp": "lightning.pytorch.strategies.DDPStrategy",
    "fsdp": "lightning.pytorch.strategies.FSDPStrategy",
    "deepspeed": "lightning.pytorch.strategies.DeepSpeedStrategy",
}


def _import(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(__import__(module, fromlist=[name]), name)


def read_trainer_config(path: str | Path) -> dict:
    """Read and check a trainer settings YAML: every key must be a ``lightning.Trainer`` argument,
    every strategy argument one of its strategy class's (the strategy is not built yet)."""
    import lightning as L

    from vidllm.shipped import find_config

    path = find_config(path)
    if not path.is_file():
        raise ConfigError(f"trainer config not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of lightning.Trainer arguments")
    allowed = set(inspect.signature(L.Trainer.__init__).parameters) - {"self"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{path}: {unknown} are not lightning.Trainer arguments")
    strategy = data.get("strategy")
    if isinstance(strategy, dict):
        name = strategy.get("name")
        if name not in STRATEGIES:
            raise ConfigError(f"{path}: strategy.name = {name!r}; expected one of {sorted(STRATEGIES)}")
        params = set(inspect.signature(_import(STRATEGIES[name]).__init__).parameters)
        if name in FORWARDED:
            params |= set(inspect.signature(_import(FORWARDED[name]).__init__).parameters)
        bad = sorted(set(strategy.get("args") or {}) - params)
        if bad:
            target = STRATEGIES[name] + (f" or {FORWARDED[name]}" if name in FORWARDED else "")
            raise ConfigError(f"{path}: strategy.args {bad} are not arguments of {target}")
    return data


def transformer_block_classes() -> set[type]:
    """The transformer-block classes FSDP wraps one by one: aggregator/camera blocks, DINOv2 layers and
    the decoder layers of the LLM families the configs use (Qwen2 / Qwen2.5, Llama / Vicuna)."""
    from transformers.models.dinov2_with_registers.modeling_dinov2_with_registers import Dinov2WithRegistersLayer
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer
    from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer

    from recon.layers.block import Block

    return {Block, Dinov2WithRegistersLayer, Qwen2DecoderLayer, LlamaDecoderLayer}


def build_strategy(spec):
    """A strategy string stays as is; ``{name, args}`` becomes the Lightning strategy object."""
    if not isinstance(spec, dict):
        return spec
    args = dict(spec.get("args") or {})
    if spec["name"] == "fsdp" and args.get("auto_wrap_policy") == "transformer_blocks":
        args["auto_wrap_policy"] = transformer_block_classes()
    return _import(STRATEGIES[spec["name"]])(**args)
