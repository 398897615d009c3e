"""Aggregator: shapes, kept layers, frame-0 slot rule, backend switch, gradient checkpointing."""

import pytest
import torch

from recon.aggregator import Aggregator, frame_slot_tokens
from recon.attention import set_attention_backend
from recon.config import AggregatorConfig


def _agg(**kw):
    torch.manual_seed(0)
    return Aggregator(32, AggregatorConfig(depth=3, num_heads=4, **kw), return_layers=[0, 2]).eval()


def test_shapes_and_only_requested_layers():
    agg = _agg()
    layers, start = agg(torch.randn(2, 3, 35, 32), (5, 7))
    assert start == 5
    assert sorted(layers) == [0, 2]
    assert layers[0].shape == (2, 3, 40, 64)


def test_frame_slot_rule():
    table = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
    out = frame_slot_tokens(table, batch=2, frames=4).reshape(2, 4, 3, 4)
    for b in range(2):
        assert torch.equal(out[b, 0], table[0, 0])
        for s in range(1, 4):
            assert torch.equal(out[b, s], table[0, 1])


def test_frame_zero_is_the_reference_frame():
    """Swapping frames 1 and 2 permutes their outputs; moving a frame into slot 0 does not."""
    agg = _agg()
    with torch.no_grad():
        agg.camera_token.normal_()
        agg.register_token.normal_()
    x = torch.randn(1, 3, 6, 32)
    with torch.no_grad():
        base = agg(x, (2, 3))[0][2]
        swapped = agg(x[:, [0, 2, 1]], (2, 3))[0][2]
        rolled = agg(x[:, [1, 0, 2]], (2, 3))[0][2]
    torch.testing.assert_close(swapped, base[:, [0, 2, 1]], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(rolled, base[:, [1, 0, 2]], atol=1e-4)


def test_backend_switch_sdpa_equals_math():
    agg = _agg()
    x = torch.randn(1, 2, 6, 32)
    try:
        set_attention_backend("math")
        with torch.no_grad():
            ref = agg(x, (2, 3))[0][2]
    finally:
        set_attention_backend("auto")
    with torch.no_grad():
        torch.testing.assert_close(agg(x, (2, 3))[0][2], ref, rtol=1e-5, atol=1e-5)


def test_gradient_checkpointing_same_outputs_and_grads():
    agg = _agg().train()
    x = torch.randn(1, 2, 6, 32)
    agg(x, (2, 3))[0][2].square().sum().backward()
    g = agg.frame_blocks[0].attn.qkv.weight.grad.clone()
    agg.zero_grad()
    agg.cfg.gradient_checkpointing = True
    agg(x, (2, 3))[0][2].square().sum().backward()
    torch.testing.assert_close(agg.frame_blocks[0].attn.qkv.weight.grad, g, rtol=1e-5, atol=1e-6)


def test_errors_name_the_problem():
    agg = _agg()
    with pytest.raises(ValueError, match="do not match grid"):
        agg(torch.randn(1, 2, 7, 32), (2, 3))
    with pytest.raises(ValueError, match="recon.aggregator.depth"):
        Aggregator(32, AggregatorConfig(depth=2, num_heads=4), return_layers=[5])
