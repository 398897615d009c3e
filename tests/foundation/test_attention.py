"""The single attention backend switch: numbers agree across backends, fallback is clean."""

import logging

import pytest
import torch

from recon import attention as A


@pytest.fixture
def qkv():
    torch.manual_seed(0)
    return torch.randn(2, 3, 7, 8), torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 8)


def _reference(q, k, v, mask=None):
    out = torch.empty_like(q)
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            logits = q[b, h] @ k[b, h].T / q.shape[-1] ** 0.5
            if mask is not None:
                logits = logits.masked_fill(~mask[b, 0], float("-inf"))
            out[b, h] = torch.softmax(logits, dim=-1) @ v[b, h]
    return out


@pytest.mark.parametrize("backend", ["sdpa", "math", "auto"])
def test_backends_match_reference(qkv, backend):
    q, k, v = qkv
    torch.testing.assert_close(A.attention(q, k, v, backend=backend), _reference(q, k, v), atol=1e-5, rtol=1e-5)


def test_boolean_mask_and_additive_mask_agree(qkv):
    q, k, v = qkv
    mask = torch.rand(2, 1, 7, 5) > 0.3
    mask[..., 0] = True  # every query keeps at least one key
    ref = _reference(q, k, v, mask)
    additive = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    for backend in ("sdpa", "math"):
        torch.testing.assert_close(A.attention(q, k, v, attn_mask=mask, backend=backend), ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(A.attention(q, k, v, attn_mask=additive, backend=backend), ref, atol=1e-5, rtol=1e-5)


def test_xformers_request_on_cpu_falls_back_to_sdpa(qkv, caplog):
    q, k, v = qkv
    assert A.resolve_backend("xformers", torch.device("cpu")) == "sdpa"
    assert A.resolve_backend("auto", torch.device("cpu")) == "sdpa"
    with caplog.at_level(logging.WARNING):
        out = A.attention(q, k, v, backend="xformers")
    torch.testing.assert_close(out, A.attention(q, k, v, backend="sdpa"))


def test_global_switch_and_unknown_backend(qkv):
    q, k, v = qkv
    previous = A.get_attention_backend()
    try:
        A.set_attention_backend("math")
        assert A.resolve_backend(None, q.device) == "math"
    finally:
        A.set_attention_backend(previous)
    with pytest.raises(ValueError, match="unknown attention backend"):
        A.set_attention_backend("flash9")
    with pytest.raises(ValueError, match="unknown attention backend"):
        A.attention(q, k, v, backend="flash9")


def test_custom_scale(qkv):
    q, k, v = qkv
    torch.testing.assert_close(
        A.attention(q, k, v, scale=0.5, backend="sdpa"),
        A.attention(q * 0.5 * 8**0.5, k, v, backend="math"),
        atol=1e-5,
        rtol=1e-5,
    )
