"""``vidllm config``: print the resolved config, validate YAML files, or list every option."""

from __future__ import annotations

import argparse
import dataclasses

from omegaconf import OmegaConf

from vidllm.config import VidLLMConfig, iter_fields, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="*", help="YAML config file(s) to validate and print (the first is printed)")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE", help="dotted overrides, e.g. data.num_frames=16")
    parser.add_argument("--list", action="store_true", help="list every option with its default and help text")


def run(args: argparse.Namespace) -> int:
    if args.list:
        for key, default, help_text in iter_fields(VidLLMConfig):
            print(f"{key:42s} {default!r:28s} {help_text}")
        return 0
    if not args.config:
        cfg = VidLLMConfig()
        print(OmegaConf.to_yaml(OmegaConf.structured(dataclasses.asdict(cfg))), end="")
        return 0
    for i, path in enumerate(args.config):
        cfg = load_config(path, args.overrides)
        if i == 0:
            print(OmegaConf.to_yaml(OmegaConf.structured(dataclasses.asdict(cfg))), end="")
        else:
            print(f"# {path}: valid")
    return 0
