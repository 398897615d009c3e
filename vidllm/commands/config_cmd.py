"""``vidllm config``: print the resolved config, validate YAML files, list every option, or account for
the parameters and memory of a config's model (``--params``: built on the meta device, see :mod:`vidllm.params`).

``--list`` reads the options off ``vidllm fit``'s own parser (:func:`vidllm.training.fit_args.build_parser`,
jsonargparse over :class:`~vidllm.config.VidLLMConfig`): the keys, defaults, help texts and choices it prints
are the ones ``vidllm fit --model.KEY`` accepts."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator
from typing import Any, Literal, get_args, get_origin

from omegaconf import OmegaConf

from vidllm.config import VidLLMConfig, load_config

MODEL_PREFIX = "model."
"""Where ``vidllm fit``'s parser puts the config fields (``--model.cta.mode``)."""


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


def _choices(typehint: Any) -> tuple:
    """Allowed values of a ``Literal`` type hint, or of the entries of a ``list[Literal[...]]``; () otherwise."""
    if get_origin(typehint) is list and get_args(typehint):
        typehint = get_args(typehint)[0]
    return get_args(typehint) if get_origin(typehint) is Literal else ()


def options() -> Iterator[tuple[str, Any, str, tuple]]:
    """``(dotted_key, default, help, choices)`` of every config field, in declaration order, from the
    ``--model.*`` arguments of ``vidllm fit``'s parser (help: the field's attribute docstring, whitespace
    collapsed; choices: the values of a ``Literal``-typed field, else ())."""
    from vidllm.training.fit_args import build_parser

    for action in build_parser("fit")._actions:
        if not action.dest.startswith(MODEL_PREFIX) or action.default is argparse.SUPPRESS:
            continue  # other arguments, and the --model.GROUP CONFIG loaders of nested sections
        help_text = " ".join((action.help or "").split())
        # jsonargparse keeps the field's type hint on its ActionTypeHint (the one its --help prints)
        yield action.dest[len(MODEL_PREFIX) :], action.default, help_text, _choices(getattr(action, "_typehint", None))


def run(args: argparse.Namespace) -> int:
    if args.list:
        for key, default, help_text, choices in options():
            allowed = f"{{{','.join(map(str, choices))}}} " if choices else ""
            print(f"{key:42s} {default!r:28s} {allowed}{help_text}")
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
