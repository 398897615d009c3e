"""DPT decoder/head: exact H×W on odd grids, chunking, UV embedding, residual unit form."""

import math

import numpy as np
import pytest
import torch

from recon.heads.dpt import DPTDecoder, DPTHead
from recon.heads.fusion import ResidualConvUnit
from recon.layers.pos_embed import uv_position_embedding


@pytest.mark.parametrize("grid", [(5, 7), (3, 3), (7, 5), (1, 1), (4, 6)])
def test_decoder_output_is_exactly_image_size(grid):
    torch.manual_seed(0)
    dec = DPTDecoder(24, features=16, out_channels=[8, 16, 16, 16]).eval()
    h, w = grid
    with torch.no_grad():
        out = dec([torch.randn(2, h * w, 24) for _ in range(4)], grid, (14 * h, 14 * w))
    assert out.shape == (2, 8, 14 * h, 14 * w)


def test_head_depth_conf_shapes_positive_and_chunking_invariant():
    torch.manual_seed(0)
    head = DPTHead(24, [0, 1, 1, 2], features=16, out_channels=[8, 16, 16, 16], frames_chunk_size=2).eval()
    layers = {i: torch.randn(1, 5, 5 + 35, 24) for i in range(3)}
    with torch.no_grad():
        depth, conf = head(layers, (70, 98), patch_start_idx=5)
        head.frames_chunk_size = 0
        depth_all, conf_all = head(layers, (70, 98), patch_start_idx=5)
    assert depth.shape == conf.shape == (1, 5, 70, 98)
    assert (depth > 0).all() and (conf > 1).all()
    torch.testing.assert_close(depth, depth_all, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(conf, conf_all, rtol=1e-5, atol=1e-6)


def test_head_missing_layer_message():
    head = DPTHead(24, [0, 1, 1, 4], features=16, out_channels=[8, 16, 16, 16])
    with pytest.raises(ValueError, match=r"layers \[4\]"):
        head({0: torch.randn(1, 1, 6, 24), 1: torch.randn(1, 1, 6, 24)}, (14, 14), 5)


def test_uv_embedding_against_numpy():
    h, w, c, aspect = 3, 5, 8, 98 / 70
    emb = uv_position_embedding(h, w, c, aspect).numpy()
    diag = math.hypot(aspect, 1.0)
    q = c // 4
    omega = 100.0 ** (-np.arange(q) / q)
    for yi in range(h):
        for xi in range(w):
            u = (aspect / diag) * (w - 1) / w * (-1 + 2 * xi / (w - 1))
            v = (1 / diag) * (h - 1) / h * (-1 + 2 * yi / (h - 1))
            ref = np.concatenate([np.sin(u * omega), np.cos(u * omega), np.sin(v * omega), np.cos(v * omega)])
            np.testing.assert_allclose(emb[:, yi, xi], ref, rtol=1e-5, atol=1e-6)


def test_residual_unit_adds_activated_input():
    torch.manual_seed(0)
    rcu = ResidualConvUnit(4)
    x = torch.randn(1, 4, 5, 5)
    relu = torch.clamp_min(x, 0)
    ref = relu + rcu.conv2(torch.clamp_min(rcu.conv1(relu), 0))
    torch.testing.assert_close(rcu(x), ref)
    assert x.min() < 0  # input not modified in place


def test_decoder_bad_inputs():
    dec = DPTDecoder(24, features=16, out_channels=[8, 16, 16, 16])
    with pytest.raises(ValueError, match="grid 2x3"):
        dec([torch.randn(1, 5, 24)] * 4, (2, 3), (28, 42))
    with pytest.raises(ValueError, match="divisible by 4"):
        DPTDecoder(24, features=12)
