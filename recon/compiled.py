"""Compiled inference forwards: ``torch.compile`` (inductor) with the weights frozen into the graph.

Inference on a fixed model lets inductor treat the parameters as constants ("freezing"): on CPU it
pre-packs the linear and convolution weights for oneDNN, fuses their bias and activation
(``Linear + GELU``), folds the constant work (RoPE and UV tables, LayerScale into the
preceding weights) and fuses the element-wise chains (LayerNorm, RoPE, residual adds) into a few
generated kernels. Outputs equal the eager forward up to float rounding (the compiled arithmetic
reorders sums: ~1e-7 relative on the reconstruction outputs in fp32) — what the VGGT parity tolerance
of 1e-5 allows.

The first call of each input shape compiles (tens of seconds on CPU, once per process; later shapes
trigger a recompile), so this pays off for many forwards of one shape: a long video in chunks,
a benchmark, an evaluation. Frozen weights mean the compiled forward must not be used after the
module's weights change (it keeps its own constant copy): compile after loading, for inference only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import torch
from torch import nn

from recon.choices import check_choice

CompileMode = Literal["none", "default", "max-autotune"]
"""``none``: eager; ``default``: inductor with frozen weights; ``max-autotune``: also benchmarks kernel choices
when compiling (slower to compile, sometimes faster to run)."""
COMPILE_MODES: tuple[str, ...] = get_args(CompileMode)

__all__ = ["COMPILE_MODES", "CompileMode", "compile_for_inference"]


def compile_for_inference(module: nn.Module, mode: CompileMode = "default") -> Callable:
    """``module`` (put in eval mode) → a callable with the module's forward signature that runs under
    ``torch.no_grad()``: the module itself for ``mode="none"``, else ``torch.compile(module)`` with
    inductor's weight freezing.

    Args:
        module: e.g. a :class:`recon.model.ReconstructionModel` (``[B, S, 3, H, W]`` → its output dict) or a
            Vid-LLM model's geometry forward.
        mode: one of :data:`COMPILE_MODES`.
    Raises:
        ValueError: an unknown ``mode`` (the message lists the choices).
    """
    check_choice("compile mode", mode, COMPILE_MODES)
    module.eval()
    if mode == "none":
        run = module
    else:
        options = {"freezing": True}
        if mode == "max-autotune":
            options["max_autotune"] = True
        run = torch.compile(module, options=options)

    @torch.no_grad()
    def forward(*args, **kwargs):
        return run(*args, **kwargs)

    forward.__doc__ = f"{type(module).__name__}.forward, compile mode {mode!r}, under torch.no_grad()"
    return forward
