"""The attention backend is a per-model setting: building a model never changes another model's
modules nor the process default (recon.attention.use_attention_backend)."""

import pytest
import torch

import recon.attention as A
from cta.mha import MultiHeadAttention
from recon.layers.block import Attention
from tests.helpers import micro_config


def _backends(model) -> dict[str, str | None]:
    return {name: m.attention_backend for name, m in model.named_modules() if hasattr(m, A.ATTENTION_BACKEND_ATTR)}


@pytest.fixture
def record_backends(monkeypatch):
    """Records the backend name every attention call asks for (before the default is applied)."""
    seen = []
    real = A.resolve_backend

    def spy(name, device):
        seen.append(name)
        return real(name, device)

    monkeypatch.setattr(A, "resolve_backend", spy)
    return seen


def test_second_model_leaves_first_model_and_process_default_alone(tokenizer, record_backends):
    from vidllm.model import VidLLM

    default = A.get_attention_backend()
    torch.manual_seed(0)
    first = VidLLM(micro_config(attention_backend="math"), tokenizer).eval()
    second = VidLLM(micro_config(attention_backend="sdpa"), tokenizer).eval()
    assert A.get_attention_backend() == default

    got_first, got_second = _backends(first), _backends(second)
    # every attention-calling part carries the setting: DINOv2 encoder, aggregator, camera head, CTA
    for part in ("encoder.", "aggregator.", "camera_head.", "cta."):
        assert any(name.startswith(part) for name in got_first), part
    assert set(got_first.values()) == {"math"}
    assert set(got_second.values()) == {"sdpa"}

    # the first model's forward asks for its own backend in every attention call
    images = torch.rand(1, 2, 3, 56, 70)
    with torch.no_grad():
        first(images)
    assert record_backends and set(record_backends) == {"math"}
    assert A.get_attention_backend() == default


def test_process_default_does_not_reach_a_configured_model(tokenizer):
    from vidllm.model import VidLLM

    model = VidLLM(micro_config(attention_backend="math"), tokenizer)
    previous = A.get_attention_backend()
    try:
        A.set_attention_backend("sdpa")
        assert set(_backends(model).values()) == {"math"}
    finally:
        A.set_attention_backend(previous)


def test_helper_rejects_unknown_name_and_changes_nothing():
    mha = MultiHeadAttention(8, 2)
    A.use_attention_backend(mha, "math")
    with pytest.raises(
        ValueError, match=r"attention_backend = 'flash9'; expected one of \['auto', 'sdpa', 'xformers', 'math'\]"
    ):
        A.use_attention_backend(mha, "flash9")
    assert mha.attention_backend == "math"


def test_helper_counts_modules_and_none_restores_the_process_default():
    block_attn = Attention(8, 2)
    assert block_attn.attention_backend is None
    holder = torch.nn.ModuleList([block_attn, MultiHeadAttention(8, 2), torch.nn.Linear(8, 8)])
    assert A.use_attention_backend(holder, "math") == 2
    assert block_attn.attention_backend == "math"
    assert A.use_attention_backend(holder, None) == 2
    assert block_attn.attention_backend is None


def test_math_module_matches_auto_module_on_cpu():
    torch.manual_seed(0)
    attn = Attention(16, 2, qk_norm=True).eval()
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 5, 16)
    kv = torch.randn(2, 7, 16)
    key_mask = torch.ones(2, 7, dtype=torch.bool)
    key_mask[1, 4:] = False
    with torch.no_grad():
        A.use_attention_backend(attn, "auto")
        A.use_attention_backend(mha, "auto")
        ref_attn, ref_mha = attn(x), mha(x, kv, key_mask=key_mask)
        A.use_attention_backend(attn, "math")
        A.use_attention_backend(mha, "math")
        torch.testing.assert_close(attn(x), ref_attn, rtol=0, atol=1e-6)
        torch.testing.assert_close(mha(x, kv, key_mask=key_mask), ref_mha, rtol=0, atol=1e-6)
