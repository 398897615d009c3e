"""Shared encoder: shapes, normalisation inside, intermediate layers, local HF directory, conv kind."""

import pytest
import torch
import torch.nn.functional as F

from recon.config import EncoderConfig
from recon.encoder import IMAGENET_MEAN, IMAGENET_STD, SharedEncoder


def _cfg(**kw):
    base = dict(hidden_size=32, num_layers=3, num_heads=4, pretrain_image_size=56, intermediate_layers=[0, 2])
    base.update(kw)
    return EncoderConfig(**base)


def test_dinov2_shapes_and_layers():
    torch.manual_seed(0)
    enc = SharedEncoder(_cfg()).eval()
    out = enc(torch.rand(2, 3, 3, 70, 98))
    assert out.patch_tokens.shape == (6, 35, 32)
    assert out.grid_hw == (5, 7)
    assert sorted(out.intermediates) == [0, 2]
    assert torch.equal(out.intermediates[2], out.patch_tokens)
    assert out.intermediates[0].shape == (6, 35, 32)


def test_matches_transformers_forward_on_normalised_pixels():
    torch.manual_seed(0)
    enc = SharedEncoder(_cfg()).eval()
    x = torch.rand(2, 3, 70, 98)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = enc.model(pixel_values=(x - mean) / std).last_hidden_state[:, 5:]
        ours = enc(x).patch_tokens
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_position_embedding_interpolation_is_bicubic_antialias_by_size():
    torch.manual_seed(0)
    enc = SharedEncoder(_cfg(num_layers=1, intermediate_layers=[0])).eval()
    emb = enc.model.embeddings
    x = torch.randn(1, 3, 70, 98)
    with torch.no_grad():
        got = emb(x)
        pos = emb.position_embeddings
        grid = F.interpolate(
            pos[:, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2), size=(5, 7), mode="bicubic", antialias=True
        )
        patches = emb.patch_embeddings.projection(x).flatten(2).transpose(1, 2) + grid.flatten(2).transpose(1, 2)
    torch.testing.assert_close(got[:, 0], emb.cls_token[:, 0] + pos[:, 0])
    torch.testing.assert_close(got[:, 1:5], emb.register_tokens.expand(1, -1, -1))  # registers get no position
    torch.testing.assert_close(got[:, 5:], patches, rtol=1e-5, atol=1e-5)


def test_local_pretrained_directory_round_trip(tmp_path):
    torch.manual_seed(0)
    enc = SharedEncoder(_cfg()).eval()
    enc.model.save_pretrained(tmp_path)
    loaded = SharedEncoder(_cfg(pretrained_path=str(tmp_path))).eval()
    x = torch.rand(1, 2, 3, 56, 42)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).patch_tokens, enc(x).patch_tokens)
    with pytest.raises(ValueError, match="hidden_size"):
        SharedEncoder(_cfg(pretrained_path=str(tmp_path), hidden_size=64, num_heads=4))


def test_conv_kind_is_a_strided_conv():
    torch.manual_seed(0)
    enc = SharedEncoder(_cfg(kind="conv", intermediate_layers=[0])).eval()
    x = torch.rand(2, 3, 28, 42)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    ref = F.conv2d((x - mean) / std, enc.patch_embed.weight, enc.patch_embed.bias, stride=14).flatten(2).transpose(1, 2)
    torch.testing.assert_close(enc(x).patch_tokens, ref)


def test_gradient_checkpointing_same_grads():
    torch.manual_seed(0)
    enc = SharedEncoder(_cfg()).train()
    x = torch.rand(1, 3, 28, 28)
    enc(x).patch_tokens.square().sum().backward()
    g0 = enc.model.encoder.layer[0].mlp.fc1.weight.grad.clone()
    enc.zero_grad()
    enc.cfg.gradient_checkpointing = True
    enc(x).patch_tokens.square().sum().backward()
    torch.testing.assert_close(enc.model.encoder.layer[0].mlp.fc1.weight.grad, g0, rtol=1e-5, atol=1e-6)


def test_bad_image_size_message():
    enc = SharedEncoder(_cfg())
    with pytest.raises(ValueError, match="multiple of encoder.patch_size"):
        enc(torch.rand(1, 3, 30, 28))


def test_pretrained_path_must_be_local_directory(tmp_path):
    with pytest.raises(ValueError, match="encoder.pretrained_path"):
        SharedEncoder(_cfg(pretrained_path="facebook/dinov2-with-registers-large"))


def test_encoder_attention_goes_through_project_switch(monkeypatch):
    import recon.attention as A

    enc = SharedEncoder(_cfg(num_layers=2, intermediate_layers=[0])).eval()
    x = torch.rand(1, 3, 28, 28)
    with torch.no_grad():
        ref = enc(x).patch_tokens
    calls = []
    original = A._math_attention
    monkeypatch.setattr(A, "_math_attention", lambda *a, **k: calls.append(1) or original(*a, **k))
    A.set_attention_backend("math")
    try:
        with torch.no_grad():
            out = enc(x).patch_tokens
    finally:
        A.set_attention_backend("auto")
    assert len(calls) == 2
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
