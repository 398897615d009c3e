"""The single console entry point: ``vidllm <command> [options]``.

Each command lives in its own module and is imported only when it runs, so ``vidllm --help``
stays fast. A command module exposes ``add_arguments(parser)`` (argparse) and ``run(args) -> int``, or
``main(argv, name) -> int`` when it parses its own arguments (``fit``/``validate``/``test``/``predict``:
:func:`vidllm.training.fit.fit`, jsonargparse).
User-facing errors are printed as one line with a non-zero exit (``--debug`` shows the traceback
instead): the package's own types (:mod:`vidllm.errors`), ``ValueError`` (the convention of config
validation, also in the leaf packages, which cannot import :mod:`vidllm.errors`) and ``OSError``
(files). Anything else (``RuntimeError``, ``KeyError``, ...) is a bug or an environment failure and
propagates with its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from vidllm.errors import VidLLMError

# name → (module, one-line help). Add a command by adding a module and a line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("vidllm.commands.config_cmd", "show, validate or list the options of a config"),
    "fit": (
        "vidllm.commands.fit_cmd",
        "train a stage (Lightning, jsonargparse): --stage 1|2 --config FILE [--config FILE ...] [--trainer.KEY V] [--model.GROUP.KEY V] [--print_config]",
    ),
    "validate": ("vidllm.commands.fit_cmd", "validate a model on the validation split (same arguments as fit)"),
    "test": ("vidllm.commands.fit_cmd", "test a model (same arguments as fit)"),
    "predict": ("vidllm.commands.fit_cmd", "predict reconstructions (same arguments as fit)"),
    "teachers": (
        "vidllm.commands.teachers_cmd",
        "train the tiny geometry (VGGT-style) and semantic (CLIP-style) teachers on synthetic scenes",
    ),
    "synth": (
        "vidllm.commands.synth_cmd",
        "generate synthetic scenes in the real ScanNet / ScanRefer / ScanQA formats",
    ),
    "demo": ("vidllm.commands.demo_cmd", "train and evaluate a tiny model end to end on synthetic scenes (CPU)"),
    "eval": (
        "vidllm.commands.eval_cmd",
        "evaluate a saved model on a benchmark, TASK = scanrefer|multi3drefer|scanqa|sqa3d|scan2cap|recon: predictions.json, metrics.json, a table",
    ),
    "export-pointcloud": (
        "vidllm.commands.export_pointcloud_cmd",
        "video → metric coloured point cloud (PLY), cameras (JSON) and a preview (PNG), with a model or a VGGT checkpoint",
    ),
    "export-checkpoint": (
        "vidllm.commands.export_checkpoint_cmd",
        "Lightning training checkpoint → save_pretrained model directory",
    ),
}

EXIT_USAGE = 2
EXIT_ERROR = 1
USER_ERRORS = (VidLLMError, ValueError, OSError)
"""Exceptions shown as one line (the package's own types subclass ``ValueError``; listed for clarity)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidllm",
        description="Vid-LLM: monocular video → metric 3D reconstruction, answers, captions and 3D boxes.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    parser.add_argument("--version", action="store_true", help="print the package version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _run(module, name: str, rest: list[str]) -> int:
    """Run a command: its own ``main(argv, name)`` (``fit`` and friends), else ``run`` on the arguments of an
    argparse sub-parser filled by ``add_arguments``."""
    if hasattr(module, "main"):
        try:
            return int(module.main(rest, name) or 0)
        except SystemExit as done:  # --help / --print_config printed: the command's exit status
            return done.code if isinstance(done.code, int) else EXIT_ERROR if done.code else 0
    sub = argparse.ArgumentParser(prog=f"vidllm {name}", description=COMMANDS[name][1])
    module.add_arguments(sub)
    args = sub.parse_args(rest)
    args.command = name
    return int(module.run(args) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Split global flags from the command and its own arguments.
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if "--version" in argv[:1]:
        from vidllm import __version__

        print(__version__)
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else EXIT_USAGE
    from vidllm.progress import quiet_library_bars

    quiet_library_bars()
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        parser.print_usage(sys.stderr)
        print(f"vidllm: unknown command {name!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return EXIT_USAGE
    module = importlib.import_module(COMMANDS[name][0])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if debug:
        return _run(module, name, rest)
    try:
        return _run(module, name, rest)
    except BrokenPipeError:  # output piped into `head` and closed early
        return 0
    except KeyboardInterrupt:
        print("vidllm: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        # The message already names file and field; other exceptions propagate with their traceback.
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"vidllm {name}: error: {message} (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
