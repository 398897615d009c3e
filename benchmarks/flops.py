"""Analytic FLOP and activation-memory count of one Vid-LLM forward pass.

Counts multiply–accumulates as 2 FLOPs, for the matmuls and convolutions that dominate each
module (norms, activations and softmax are ignored: < 1 % at paper scale). Activation memory is
what the forward must keep for the heads (the aggregator layers the DPT and camera heads read)
plus the largest transient of one block, with memory-efficient attention (no (S·P)² matrix).

    python benchmarks/flops.py --config configs/vidllm_large.yaml --frames 32 --height 392 --width 518

prints a table per module and writes JSON (``--out``). Compare the total with the machine's
peak (e.g. H100 SXM bf16 dense ≈ 989 TFLOP/s) to see how far a measured time is from the bound.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidllm.config import VidLLMConfig, load_config  # noqa: E402


@dataclass
class Cost:
    flops: float = 0.0
    kept_bytes: float = 0.0
    transient_bytes: float = 0.0


def _linear(tokens: float, n_in: int, n_out: int) -> float:
    return 2.0 * tokens * n_in * n_out


def _vit_block(seq: int, batch: int, dim: int, mlp_ratio: float, attn_seq: int | None = None) -> float:
    """One pre-norm transformer block over ``batch`` sequences of ``seq`` tokens."""
    tokens = seq * batch
    attn_seq = attn_seq or seq
    qkv_proj = _linear(tokens, dim, 3 * dim) + _linear(tokens, dim, dim)
    attn = 2 * 2.0 * batch * seq * attn_seq * dim  # QKᵀ and AV
    mlp = _linear(tokens, dim, int(mlp_ratio * dim)) * 2
    return qkv_proj + attn + mlp


def _conv(h: int, w: int, c_in: int, c_out: int, k: int, n: int) -> float:
    return 2.0 * n * h * w * c_in * c_out * k * k


def _dpt(
    n: int,
    gh: int,
    gw: int,
    height: int,
    width: int,
    in_dim: int,
    features: int,
    out_ch: list[int],
    out_dim: int,
    head_hidden: int = 32,
) -> float:
    """DPT decoder FLOPs for ``n`` frames on a ``gh×gw`` patch grid, plus VGGT's ``output_conv2``
    head (3×3 to ``head_hidden``, 1×1 to ``out_dim``) unless ``out_dim`` is 0."""
    flops = 0.0
    scales = [4, 2, 1, 0.5]
    for c, s in zip(out_ch, scales):
        flops += _linear(n * gh * gw, in_dim, c)  # 1x1 projection
        h, w = max(1, int(gh * s)), max(1, int(gw * s))
        if s != 1:
            flops += _conv(h, w, c, c, 4 if s == 4 else 2 if s == 2 else 3, n)  # resize layer
        flops += _conv(h, w, c, features, 3, n)  # layer_rn
        flops += 4 * _conv(h, w, features, features, 3, n)  # two residual conv units
        flops += _conv(h * 2, w * 2, features, features, 1, n)  # out_conv after upsampling
    flops += _conv(gh * 8, gw * 8, features, features // 2, 3, n)  # output_conv1
    if out_dim:
        flops += _conv(height, width, features // 2, head_hidden, 3, n) + _conv(
            height, width, head_hidden, out_dim, 1, n
        )
    return flops


def _metric_bins(n: int, height: int, width: int, in_ch: int, hidden: int, n_bins: int, n_prob: int) -> float:
    """Metric-bin head (``recon.heads.metric_bins.MetricBinHead``) on ``n`` full-resolution maps:
    3×3 stem ``in_ch → hidden``, the probability MLP (``hidden → hidden → n_prob``) and the
    centre MLP (``hidden → hidden → K``) as 1×1 convs, and ≈ 15 element-wise operations per bin
    and pixel (log-binomial probabilities, centre refinement, ``Σ p·c``)."""
    pixels = n * height * width
    stem = _conv(height, width, in_ch, hidden, 3, n)
    mlps = 2 * _linear(pixels, hidden, hidden) + _linear(pixels, hidden, n_prob) + _linear(pixels, hidden, n_bins)
    return stem + mlps + 15.0 * pixels * n_bins


def count(
    cfg: VidLLMConfig,
    frames: int,
    height: int,
    width: int,
    text_tokens: int = 64,
    vocab_size: int = 152064,
    bytes_per_el: int = 2,
) -> dict[str, Cost]:
    """Per-module analytic cost of one clip's forward (reconstruction + answer prefill)."""
    e, a = cfg.encoder, cfg.recon.aggregator
    patch = e.patch_size
    gh, gw = height // patch, width // patch
    p = gh * gw
    c = e.hidden_size
    out: dict[str, Cost] = {}

    enc_seq = 1 + e.num_register_tokens + p
    out["encoder"] = Cost(
        flops=_linear(frames * p, 3 * patch * patch, c) + e.num_layers * _vit_block(enc_seq, frames, c, e.mlp_ratio),
        kept_bytes=len(e.intermediate_layers) * frames * p * c * bytes_per_el,
        transient_bytes=frames * enc_seq * int(e.mlp_ratio * c) * bytes_per_el,
    )

    k = cfg.cta.num_bridge_tokens
    tokens = frames * p
    mlps = 2 * (_linear(tokens, c, int(cfg.cta.mlp_ratio * c)) + _linear(tokens, int(cfg.cta.mlp_ratio * c), c))
    bridge = 2 * (
        _linear(k, c, c) * 2 + _linear(tokens, c, 2 * c) + 2 * 2.0 * k * tokens * c
    )  # Eq. 2: two cross-attentions
    readback = 2 * (_linear(tokens, c, c) * 2 + _linear(k, c, 2 * c) + 2 * 2.0 * tokens * k * c)
    out["cta"] = Cost(
        flops=mlps + bridge + readback,
        kept_bytes=2 * tokens * c * bytes_per_el,
        transient_bytes=tokens * int(cfg.cta.mlp_ratio * c) * bytes_per_el,
    )

    n_a = 1 + a.num_register_tokens + p
    frame_blocks = a.depth * _vit_block(n_a, frames, c, a.mlp_ratio)
    global_blocks = a.depth * _vit_block(frames * n_a, 1, c, a.mlp_ratio)
    kept_layers = sorted(set(cfg.recon.depth_head.intermediate_layers) | {a.depth - 1})
    out["aggregator"] = Cost(
        flops=frame_blocks + global_blocks,
        kept_bytes=len(kept_layers) * frames * n_a * 2 * c * bytes_per_el,
        transient_bytes=frames * n_a * int(a.mlp_ratio * c) * bytes_per_el,
    )

    ch = cfg.recon.camera_head
    out["camera_head"] = Cost(
        flops=ch.iterations
        * (
            ch.trunk_depth * _vit_block(frames, 1, 2 * c, ch.mlp_ratio)
            + _linear(frames, 2 * c, 6 * c)
            + _linear(frames, 2 * c, c)
        )
    )

    dh = cfg.recon.depth_head
    chunk = dh.frames_chunk_size or frames
    out["depth_head"] = Cost(
        flops=_dpt(frames, gh, gw, height, width, 2 * c, dh.features, dh.out_channels, 2),
        kept_bytes=frames * height * width * 2 * 4,
        transient_bytes=chunk * height * width * dh.features // 2 * bytes_per_el,
    )
    md = cfg.metric_depth
    if md.enabled:
        chunk = md.frames_chunk_size or frames
        out["metric_depth"] = Cost(
            flops=_dpt(frames, gh, gw, height, width, c, md.features, md.out_channels, 0)
            + _metric_bins(
                frames,
                height,
                width,
                md.features // 2,
                md.bin_hidden,
                md.n_bins,
                2 if md.normalization == "log_binomial" else md.n_bins,
            ),
            kept_bytes=frames * height * width * 4,
            transient_bytes=chunk * height * width * 2 * md.n_bins * 4,
        )

    llm = cfg.llm
    head_dim = llm.hidden_size // llm.num_heads
    kv = llm.num_kv_heads * head_dim
    vis_tokens = min(cfg.vl.max_3d_tokens, tokens)
    seq = vis_tokens + text_tokens
    per_layer = (
        _linear(seq, llm.hidden_size, 2 * llm.hidden_size + 2 * kv)
        + 2 * 2.0 * seq * seq * llm.hidden_size
        + 3 * _linear(seq, llm.hidden_size, llm.intermediate_size)
    )
    out["vl_branch"] = Cost(
        flops=_linear(tokens, 3, c)
        + _linear(vis_tokens, c, llm.hidden_size) * 2
        + llm.num_layers * per_layer
        + _linear(1, llm.hidden_size, vocab_size),
        kept_bytes=llm.num_layers * seq * 2 * kv * bytes_per_el,  # KV cache for generation
        transient_bytes=seq * llm.intermediate_size * bytes_per_el,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config",
        default=str(Path(__file__).resolve().parents[1] / "configs" / "vidllm_large.yaml"),
        help="model config YAML",
    )
    parser.add_argument("--frames", type=int, default=32, help="frames per clip S")
    parser.add_argument("--height", type=int, default=392, help="input height (multiple of 14)")
    parser.add_argument("--width", type=int, default=518, help="input width (multiple of 14)")
    parser.add_argument("--text-tokens", type=int, default=64, help="prompt tokens besides the 3D tokens")
    parser.add_argument("--bytes", type=int, default=2, help="bytes per activation element (2 = bf16)")
    parser.add_argument("--out", default=None, help="write the table as JSON here")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    costs = count(cfg, args.frames, args.height, args.width, args.text_tokens, bytes_per_el=args.bytes)
    total = Cost(
        sum(v.flops for v in costs.values()),
        sum(v.kept_bytes for v in costs.values()),
        max(v.transient_bytes for v in costs.values()),
    )
    print(f"{'module':14s} {'GFLOP':>12s} {'kept MiB':>10s} {'transient MiB':>14s}")
    for name, cost in [*costs.items(), ("total", total)]:
        print(
            f"{name:14s} {cost.flops / 1e9:12.1f} {cost.kept_bytes / 2**20:10.1f} {cost.transient_bytes / 2**20:14.1f}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps({k: vars(v) for k, v in [*costs.items(), ("total", total)]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
