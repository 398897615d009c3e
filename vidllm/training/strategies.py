"""Trainer settings files (``configs/strategies/*.yaml``): multi-device strategies for GPU clusters.

A file holds ``lightning.Trainer`` arguments, in the YAML LightningCLI writes: ``strategy`` is a plain
string (``ddp``) or a class with its arguments::

    strategy:
      class_path: lightning.pytorch.strategies.FSDPStrategy   # or a bare name: FSDPStrategy
      init_args:
        sharding_strategy: FULL_SHARD
        auto_wrap_policy: transformer_blocks
    precision: bf16-mixed

:func:`read_trainer_config` checks the file (Trainer argument names, the class, the ``init_args`` names
against the class's signature and, for DDP / FSDP, the torch wrapper the strategy forwards extra keyword
arguments to); :func:`build_strategy` instantiates the class. ``auto_wrap_policy: transformer_blocks`` is
a vidllm shorthand (FSDP): it becomes :func:`transformer_block_classes`, so every transformer block of
the model is wrapped on its own. The earlier ``strategy: {name: ddp|fsdp|deepspeed, args: {...}}`` form
is refused with a message that spells out its ``class_path`` / ``init_args`` equivalent.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import yaml

from vidllm.errors import ConfigError

__all__ = ["STRATEGIES", "read_trainer_config", "build_strategy", "strategy_class", "transformer_block_classes"]

STRATEGY_MODULE = "lightning.pytorch.strategies"
"""Where a bare ``class_path`` (``FSDPStrategy``) is looked up."""
STRATEGIES = {
    "ddp": f"{STRATEGY_MODULE}.DDPStrategy",
    "fsdp": f"{STRATEGY_MODULE}.FSDPStrategy",
    "deepspeed": f"{STRATEGY_MODULE}.DeepSpeedStrategy",
}
"""Class paths of the strategies the shipped files use (and of the old ``name:`` values)."""
FORWARDED = {
    "DDPStrategy": "torch.nn.parallel.DistributedDataParallel",
    "FSDPStrategy": "torch.distributed.fsdp.FullyShardedDataParallel",
}
"""Strategies whose ``**kwargs`` go to a torch wrapper: its arguments are valid ``init_args`` too."""
TRANSFORMER_BLOCKS = "transformer_blocks"
"""``auto_wrap_policy`` shorthand: the classes of :func:`transformer_block_classes`."""


def _import(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def strategy_class(class_path: str, where: str = "strategy.class_path") -> type:
    """The Lightning strategy class named by ``class_path`` (dotted path, or a bare name in
    ``lightning.pytorch.strategies``).

    Raises:
        ConfigError: naming ``where`` when the class cannot be imported or is not a Lightning ``Strategy``.
    """
    from lightning.pytorch.strategies import Strategy

    path = class_path if "." in str(class_path) else f"{STRATEGY_MODULE}.{class_path}"
    try:
        cls = _import(path)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"{where} = {class_path!r}: cannot import it ({err})") from None
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        raise ConfigError(f"{where} = {class_path!r}: not a subclass of lightning.pytorch.strategies.Strategy")
    return cls


def _init_arg_names(cls: type) -> set[str] | None:
    """Keyword arguments ``cls`` accepts (its MRO's ``__init__`` and, for DDP / FSDP, the torch wrapper's);
    None when an unknown ``**kwargs`` makes any name acceptable."""
    names: set[str] = set()
    open_kwargs = False
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
        if klass.__name__ in FORWARDED:
            wrapper = inspect.signature(_import(FORWARDED[klass.__name__]).__init__).parameters.values()
            names |= {p.name for p in wrapper if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
            break
    else:
        open_kwargs = True
    return None if open_kwargs else names


def _old_format_message(path: Path, strategy: dict) -> str:
    name = strategy.get("name")
    class_path = STRATEGIES.get(name, f"{STRATEGY_MODULE}.<Class>")
    new = {"strategy": {"class_path": class_path, "init_args": dict(strategy.get("args") or {})}}
    text = yaml.safe_dump(new, sort_keys=False, default_flow_style=True, width=1 << 20).strip()
    return (
        f"{path}: strategy {{name: ..., args: ...}} is no longer read; write the strategy as LightningCLI does, "
        f"class_path and init_args: {text}"
    )


def read_trainer_config(path: str | Path) -> dict:
    """Read and check a trainer settings YAML (the strategy is not built yet).

    Returns:
        the file's mapping of ``lightning.Trainer`` arguments; ``strategy`` as written (a string or a
        ``{class_path, init_args}`` mapping).
    Raises:
        ConfigError: naming the file and the bad key: a key that is not a ``lightning.Trainer`` argument,
            a ``class_path`` that is not a Lightning strategy, an ``init_args`` name its class does not
            take, or the old ``{name, args}`` form.
    """
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
        if "name" in strategy and "class_path" not in strategy:
            raise ConfigError(_old_format_message(path, strategy))
        if set(strategy) - {"class_path", "init_args"} or "class_path" not in strategy:
            raise ConfigError(
                f"{path}: strategy needs class_path (and optional init_args), got keys {sorted(strategy)}"
            )
        cls = strategy_class(strategy["class_path"], where=f"{path}: strategy.class_path")
        init_args = strategy.get("init_args") or {}
        if not isinstance(init_args, dict):
            raise ConfigError(f"{path}: strategy.init_args must be a mapping, got {type(init_args).__name__}")
        names = _init_arg_names(cls)
        bad = [] if names is None else sorted(set(init_args) - names)
        if bad:
            target = cls.__name__ + (f" or {FORWARDED[cls.__name__]}" if cls.__name__ in FORWARDED else "")
            raise ConfigError(
                f"{path}: strategy.init_args {bad} are not arguments of {target}; expected some of {sorted(names)}"
            )
    elif strategy is not None and not isinstance(strategy, str):
        raise ConfigError(
            f"{path}: strategy must be a name (ddp) or {{class_path, init_args}}, got {type(strategy).__name__}"
        )
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
    """A strategy string (or an already built strategy) stays as is; ``{class_path, init_args}`` becomes
    the Lightning strategy object (``auto_wrap_policy: transformer_blocks`` → :func:`transformer_block_classes`)."""
    if not isinstance(spec, dict):
        return spec
    if "class_path" not in spec:
        raise ConfigError(f"strategy {spec!r}: expected {{class_path: ..., init_args: {{...}}}}")
    cls = strategy_class(spec["class_path"])
    init_args = dict(spec.get("init_args") or {})
    if init_args.get("auto_wrap_policy") == TRANSFORMER_BLOCKS:
        init_args["auto_wrap_policy"] = transformer_block_classes()
    return cls(**init_args)
