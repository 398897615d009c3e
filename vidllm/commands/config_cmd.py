"""``vidllm config``: print the resolved config, validate YAML files, list every option, or account for
the parameters and memory of a config's model (``--params``: built on the meta device, see :mod:`vidllm.params`)."""

from __future__ import annotations

import argparse
import dataclasses

from omegaconf import OmegaConf

from vidllm.config import VidLLMConfig, iter_fields, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="*", help="YAML config file(s) to validate and print (the first is printed)")
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="dotted overrides, e.g. data.num_frames=16",
    )
    parser.add_argument("--list", action="store_true", help="list every option with its default and help text")
    parser.add_argument(
        "--params",
        action="store_true",
        help="build the model of the (first) config on the meta device (no weights, no download) and print parameters per module, "
        "trainable/frozen per stage and the bytes of weights, gradients and AdamW state per stage in fp32 and bf16",
    )


def run(args: argparse.Namespace) -> int:
    if args.list:
        for key, default, help_text in iter_fields(VidLLMConfig):
            print(f"{key:42s} {default!r:28s} {help_text}")
        return 0
    if not args.config:
        cfg = VidLLMConfig()
        print(OmegaConf.to_yaml(OmegaConf.structured(dataclasses.asdict(cfg))), end="")
        return 0
    if args.params:
        import warnings

        from vidllm.params import format_report, param_report

        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*is deprecated.*")
        print(format_report(param_report(load_config(args.config[0], args.overrides)), args.config[0]))
        return 0
    for i, path in enumerate(args.config):
        cfg = load_config(path, args.overrides)
        if i == 0:
            print(OmegaConf.to_yaml(OmegaConf.structured(dataclasses.asdict(cfg))), end="")
        else:
            print(f"# {path}: valid")
    return 0
