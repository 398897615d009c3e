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
    assert flops.main(["--config", str(ROOT / "configs" / config), "--frames", "4", "--height", "112", "--width", "140", "--out", str(out)]) == 0
    assert "total" in capsys.readouterr().out
    assert out.is_file()
