"""Metric Depth Model: shapes, chunking, bins on request, config wiring, input checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recon.config import MetricDepthConfig
from recon.metric_depth import MetricDepthModel

TINY = dict(n_bins=16, bin_hidden=8, features=32, out_channels=[8, 16, 32, 32])


def _tokens(n, p, c, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, p, c, generator=gen) for _ in range(4)]


@pytest.mark.parametrize("normalization", ["log_binomial", "softmax"])
def test_shapes_and_bins(normalization):
    torch.manual_seed(0)
    cfg = MetricDepthConfig(normalization=normalization, frames_chunk_size=2, **TINY)
    model = MetricDepthModel(cfg, in_dim=24, patch_size=14)
    out = model(_tokens(2 * 3, 3 * 5, 24), image_hw=(42, 70), num_frames=3, return_bins=True)
    assert out["metric_depth"].shape == (2, 3, 42, 70)
    assert out["probs"].shape == (2, 3, 16, 42, 70) and out["centers"].shape == (2, 3, 16, 42, 70)
    torch.testing.assert_close(out["probs"].sum(2), torch.ones(2, 3, 42, 70), atol=1e-5, rtol=0)
    torch.testing.assert_close((out["probs"] * out["centers"]).sum(2), out["metric_depth"])
    assert (out["metric_depth"] > 0).all()
    assert set(model(_tokens(3, 15, 24), (42, 70), 3)) == {"metric_depth"}


def test_chunk_size_does_not_change_result_and_gradients_flow():
    torch.manual_seed(0)
    model = MetricDepthModel(MetricDepthConfig(frames_chunk_size=0, **TINY), in_dim=16, patch_size=14)
    toks = _tokens(5, 4 * 4, 16, seed=3)
    full = model(toks, (56, 56), 5)["metric_depth"]
    model.cfg.frames_chunk_size = 2
    chunked = model(toks, (56, 56), 5)["metric_depth"]
    torch.testing.assert_close(full, chunked, atol=1e-5, rtol=1e-5)
    chunked.mean().backward()
    assert model.decoder.projects[0].weight.grad is not None and model.decoder.projects[0].weight.grad.abs().sum() > 0
    assert model.bins.prob_mlp[-1].weight.grad.abs().sum() > 0


def test_built_from_tiny_yaml():
    from vidllm.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml")
    model = MetricDepthModel(cfg.metric_depth, in_dim=32, patch_size=14)
    out = model(_tokens(4, 2 * 3, 32), (28, 42), 2)
    assert out["metric_depth"].shape == (2, 2, 28, 42)


def test_input_errors_name_the_problem():
    model = MetricDepthModel(MetricDepthConfig(**TINY), in_dim=16, patch_size=14)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        model(_tokens(2, 4, 16), (30, 28), 2)
    with pytest.raises(ValueError, match="expected 4 encoder layers"):
        model(_tokens(2, 4, 16)[:3], (28, 28), 2)
    with pytest.raises(ValueError, match=r"encoder layer 0 has shape"):
        model(_tokens(2, 5, 16), (28, 28), 2)
    with pytest.raises(ValueError, match="num_frames"):
        model(_tokens(3, 4, 16), (28, 28), 2)
    with pytest.raises(ValueError, match="metric_depth.center_shift_bound"):
        MetricDepthConfig(center_shift_bound=0.5)
    with pytest.raises(ValueError, match="metric_depth.n_bins"):
        MetricDepthConfig(n_bins=1)


@pytest.mark.parametrize("normalization", ["log_binomial", "softmax"])
def test_l_md_training_fits_a_metric_target(normalization):
    """A few optimiser steps on L_MD move the predicted metric depth to a 2.5 m ramp target."""
    from recon.losses import metric_depth_loss

    torch.manual_seed(0)
    model = MetricDepthModel(MetricDepthConfig(normalization=normalization, **TINY), in_dim=16, patch_size=14)
    toks = _tokens(2, 2 * 2, 16, seed=5)
    target = 2.5 + torch.linspace(-0.5, 0.5, 28).view(1, 1, 1, 28).expand(1, 2, 28, 28)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(20):
        loss = metric_depth_loss(model(toks, (28, 28), 2)["metric_depth"], target)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = metric_depth_loss(model(toks, (28, 28), 2)["metric_depth"], target).item()
    assert final < 0.1 * first


def test_config_rejects_features_incompatible_with_uv_embedding():
    with pytest.raises(ValueError, match="metric_depth.features"):
        MetricDepthConfig(features=20)
    MetricDepthConfig(features=20, pos_embed=False)


def test_bins_stay_float32_under_bf16_autocast():
    model = MetricDepthModel(MetricDepthConfig(**TINY), in_dim=16, patch_size=14)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(_tokens(2, 4, 16), (28, 28), 2, return_bins=True)
    for key in ("metric_depth", "probs", "centers"):
        assert out[key].dtype == torch.float32 and torch.isfinite(out[key]).all()
    assert (out["centers"][:, :, 1:] > out["centers"][:, :, :-1]).all()


def test_prediction_stride_is_the_low_resolution_prediction_upsampled():
    import dataclasses

    import torch.nn.functional as F

    torch.manual_seed(0)
    model = MetricDepthModel(
        MetricDepthConfig(frames_chunk_size=0, prediction_stride=2, **TINY), in_dim=16, patch_size=14
    )
    toks = _tokens(2 * 2, 3 * 5, 16, seed=4)
    out = model(toks, (42, 70), 2, return_bins=True)
    assert out["metric_depth"].shape == (2, 2, 42, 70) and out["probs"].shape == (2, 2, 16, 42, 70)
    low = model.bins(model.decoder(toks, (3, 5), (21, 35)))
    ref = F.interpolate(low.depth[:, None], size=(42, 70), mode="bilinear", align_corners=True)[:, 0].reshape(
        2, 2, 42, 70
    )
    torch.testing.assert_close(out["metric_depth"], ref)
    torch.testing.assert_close(out["probs"].sum(2), torch.ones(2, 2, 42, 70), atol=1e-5, rtol=0)
    out["metric_depth"].mean().backward()
    assert model.decoder.projects[0].weight.grad.abs().sum() > 0
    # stride 1 is the full-resolution model, unchanged
    model.cfg = dataclasses.replace(model.cfg, prediction_stride=1)
    full = model(toks, (42, 70), 2)["metric_depth"]
    torch.testing.assert_close(full.reshape(4, 42, 70), model.bins(model.decoder(toks, (3, 5), (42, 70))).depth)
    with pytest.raises(ValueError, match="prediction_stride"):
        MetricDepthConfig(prediction_stride=0)
    model.cfg = dataclasses.replace(model.cfg, prediction_stride=4)
    with pytest.raises(ValueError, match="prediction_stride = 4"):
        model(toks, (42, 70), 2)
