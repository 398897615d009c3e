"""The analytic FLOP counter: a hand-counted block, and the whole table for every shipped config."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("bench_flops", ROOT / "benchmarks" / "flops.py")
flops = importlib.util.module_from_spec(spec)
sys.modules["bench_flops"] = flops
spec.loader.exec_module(flops)


def test_vit_block_hand_count():
    # seq 3, dim 4, mlp 2x: qkv 2*3*4*12=288, proj 2*3*4*4=96, attn 2*2*3*3*4=144, mlp 2*(2*3*4*8)=384
    assert flops._vit_block(3, 1, 4, 2.0) == 288 + 96 + 144 + 384


def test_global_attention_grows_quadratically_with_frames():
    from vidllm.config import load_config

    cfg = load_config(ROOT / "configs" / "vidllm_large.yaml")
    small = flops.count(cfg, 8, 392, 518)["aggregator"].flops
    large = flops.count(cfg, 32, 392, 518)["aggregator"].flops
    assert 4.0 < large / small < 16.0  # linear parts ×4, attention ×16


@pytest.mark.parametrize("config", ["tiny.yaml", "vidllm_large.yaml"])
def test_cli_writes_json(tmp_path, config, capsys):
    out = tmp_path / "flops.json"
    assert (
        flops.main(
            [
                "--config",
                str(ROOT / "configs" / config),
                "--frames",
                "4",
                "--height",
                "112",
                "--width",
                "140",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "total" in capsys.readouterr().out
    assert out.is_file()


def test_metric_bin_head_hand_count():
    # 1 map of 2×3 px, in 4 → hidden 2 (3×3 stem), MLPs 2→2→2 and 2→2→K=3, 15 ops per bin and pixel
    stem = 2 * 6 * 4 * 2 * 9
    mlps = 2 * (2 * 6 * 2 * 2) + 2 * 6 * 2 * 2 + 2 * 6 * 2 * 3
    assert flops._metric_bins(1, 2, 3, 4, 2, 3, 2) == stem + mlps + 15 * 6 * 3


def test_metric_depth_counts_the_bin_head():
    from vidllm.config import load_config

    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    md = cfg.metric_depth
    table = flops.count(cfg, 4, 112, 140)
    decoder = flops._dpt(4, 8, 10, 112, 140, cfg.encoder.hidden_size, md.features, md.out_channels, 0)
    bins = flops._metric_bins(4, 112, 140, md.features // 2, md.bin_hidden, md.n_bins, 2)
    assert table["metric_depth"].flops == decoder + bins
