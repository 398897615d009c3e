"""``vidllm export-checkpoint``: a Lightning training checkpoint → a ``save_pretrained`` model directory.

    vidllm export-checkpoint outputs/stage2/checkpoints/last.ckpt --out models/vidllm_tiny

Reads the run's resolved ``config.yaml`` and ``tokenizer/`` (next to ``checkpoints/``, or given with
``--config`` / ``--tokenizer``), loads the weights with ``torch.load(weights_only=True)`` (teachers and
stage-1 projections are dropped), and writes ``config.yaml`` + ``model.safetensors`` (+ tokenizer,
+ peft adapter) that ``VidLLM.from_pretrained`` reads.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="Lightning .ckpt written by `vidllm fit`")
    parser.add_argument("--out", type=Path, required=True, help="output model directory")
    parser.add_argument("--config", type=Path, default=None, help="run config (default: <run>/config.yaml)")
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer directory (default: <run>/tokenizer)")


def export(checkpoint: Path, out: Path, config: Path | None = None, tokenizer: Path | None = None) -> Path:
    """Load ``checkpoint`` (``<run>/checkpoints/*.ckpt``) into the model its run config describes and
    ``save_pretrained`` it to ``out``; returns ``out``.

    Raises:
        CheckpointError: no config next to the run, no ``model.*`` weights, or weights that do not fit the model.
    """
    from vidllm.config import load_config
    from vidllm.errors import CheckpointError
    from vidllm.io import load_state_dict, strip_prefix
    from vidllm.model import VidLLM
    from vl.tokenizer import load_tokenizer

    run_dir = checkpoint.parent.parent
    config = config or run_dir / "config.yaml"
    if not config.is_file():
        raise CheckpointError(f"no config.yaml for {checkpoint}: looked for {config}; pass --config")
    cfg = load_config(config)
    tokenizer = tokenizer or run_dir / "tokenizer"
    tok = load_tokenizer(tokenizer) if cfg.llm.path is None else None
    state = load_state_dict(checkpoint)
    weights = strip_prefix(state, "model.")
    if not weights:
        raise CheckpointError(f"{checkpoint}: no 'model.*' weights (is it a vidllm fit checkpoint?)")
    model = VidLLM(cfg, tok)
    report = model.load_weights(weights)
    if report["missing"] or report["unexpected"]:
        raise CheckpointError(f"{checkpoint}: missing {report['missing'][:8]}, unexpected {report['unexpected'][:8]}")
    return model.save_pretrained(out)


def run(args: argparse.Namespace) -> int:
    print(f"wrote {export(args.checkpoint, args.out, args.config, args.tokenizer)}")
    return 0
