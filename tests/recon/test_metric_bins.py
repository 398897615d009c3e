"""Metric-bin head: seeds, ordered centres, log-binomial against scipy, depth = expectation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import softmax as np_softmax
from scipy.stats import binom

from recon.heads.metric_bins import (
    MetricBinHead,
    center_shift_bounds,
    expected_depth,
    log_binomial_logits,
    log_binomial_probs,
    refine_bin_centers,
    seed_bin_centers,
)


def test_seed_centers_are_log_spaced():
    seeds = seed_bin_centers(7, 1e-3, 10.0).numpy()
    np.testing.assert_allclose(seeds, np.geomspace(1e-3, 10.0, 7), rtol=1e-6)
    with pytest.raises(ValueError, match="n_bins"):
        seed_bin_centers(1, 1e-3, 10.0)


def test_center_shift_bounds_hand_case():
    seeds = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)
    lower, upper = center_shift_bounds(seeds, 0.4)
    np.testing.assert_allclose(lower.numpy(), 0.4 * np.array([0.9, 9.0, 90.0]))
    np.testing.assert_allclose(upper.numpy(), 0.4 * np.array([9.0, 90.0, 900.0]))
    with pytest.raises(ValueError, match="center_shift_bound"):
        center_shift_bounds(seeds, 0.5)


def test_refined_centers_ordered_under_saturation():
    seeds = seed_bin_centers(16, 1e-3, 10.0)
    lower, upper = center_shift_bounds(seeds, 0.45)
    gen = torch.Generator().manual_seed(0)
    raw = torch.randn(2, 16, 5, 6, generator=gen) * 1e6  # tanh saturates to ±1 exactly
    raw[0, ::2] = 1e9
    raw[0, 1::2] = -1e9  # adjacent bins pushed towards each other as hard as possible
    centers = refine_bin_centers(seeds, raw, lower, upper)
    assert torch.isfinite(centers).all()
    assert (centers > 0).all()
    assert (centers[:, 1:] > centers[:, :-1]).all()
    # moderate offsets: c = c_k + tanh(raw)·bound, checked in NumPy
    raw = torch.randn(1, 16, 2, 2, generator=gen)
    centers = refine_bin_centers(seeds, raw, lower, upper).numpy()
    t = np.tanh(raw.numpy())
    ref = seeds.numpy()[None, :, None, None] + np.where(
        t >= 0, t * upper.numpy()[None, :, None, None], t * lower.numpy()[None, :, None, None]
    )
    np.testing.assert_allclose(centers, ref, rtol=1e-6)


@pytest.mark.parametrize("n_bins", [2, 9, 64])
def test_log_binomial_matches_scipy(n_bins):
    rng = np.random.default_rng(n_bins)
    q = rng.uniform(0.01, 0.99, size=(3, 1, 4, 5))
    t = rng.uniform(0.05, 5.0, size=(3, 1, 4, 5))
    k = np.arange(n_bins).reshape(1, -1, 1, 1)
    ref_logits = binom.logpmf(k, n_bins - 1, q)
    got_logits = log_binomial_logits(torch.tensor(q, dtype=torch.float32), n_bins).numpy()
    np.testing.assert_allclose(got_logits, ref_logits, rtol=1e-4, atol=1e-3)
    ref = np_softmax(ref_logits / t, axis=1)
    got = log_binomial_probs(torch.tensor(q, dtype=torch.float32), torch.tensor(t, dtype=torch.float32), n_bins).numpy()
    np.testing.assert_allclose(got, ref, atol=2e-5)
    # temperature 1: exactly the binomial pmf
    got1 = log_binomial_probs(torch.tensor(q, dtype=torch.float32), 1.0, n_bins).numpy()
    np.testing.assert_allclose(got1, binom.pmf(k, n_bins - 1, q), atol=2e-6)


def test_log_binomial_is_unimodal():
    q = torch.rand(1, 1, 8, 8)
    p = log_binomial_probs(q, 0.7, 32)[0].permute(1, 2, 0).reshape(-1, 32)
    peak = p.argmax(dim=1)
    diffs = p[:, 1:] - p[:, :-1]
    idx = torch.arange(31)
    assert (diffs[idx[None] < peak[:, None]] >= -1e-7).all()
    assert (diffs[idx[None] >= peak[:, None]] <= 1e-7).all()


@pytest.mark.parametrize("normalization", ["log_binomial", "softmax"])
@pytest.mark.parametrize("magnitude", [1.0, 1e4])
def test_head_probs_sum_to_one_and_centers_ordered(normalization, magnitude):
    torch.manual_seed(0)
    head = MetricBinHead(12, n_bins=24, min_depth=1e-3, max_depth=10.0, normalization=normalization, hidden=16)
    for p in head.center_mlp[-1].parameters():  # non-zero offsets
        torch.nn.init.normal_(p, std=1.0)
    feats = (torch.randn(2, 12, 7, 9) * magnitude).requires_grad_()
    out = head(feats)
    assert out.probs.shape == (2, 24, 7, 9) and out.centers.shape == (2, 24, 7, 9) and out.depth.shape == (2, 7, 9)
    assert torch.isfinite(out.probs).all() and torch.isfinite(out.depth).all()
    torch.testing.assert_close(out.probs.sum(1), torch.ones(2, 7, 9), atol=1e-5, rtol=0)
    assert (out.probs >= 0).all()
    assert (out.centers[:, 1:] > out.centers[:, :-1]).all()
    assert (out.centers > 0).all()
    out.depth.sum().backward()
    assert torch.isfinite(feats.grad).all()


def test_depth_is_expectation_and_centers_start_at_seeds():
    torch.manual_seed(1)
    head = MetricBinHead(8, n_bins=16, min_depth=0.1, max_depth=10.0, hidden=8)
    out = head(torch.randn(1, 8, 5, 5))
    torch.testing.assert_close(out.centers, head.seeds.view(1, -1, 1, 1).expand(1, 16, 5, 5))
    ref = (out.probs.detach().double().numpy() * out.centers.detach().double().numpy()).sum(axis=1)
    np.testing.assert_allclose(out.depth.detach().numpy(), ref, rtol=1e-5)
    torch.testing.assert_close(expected_depth(out.probs, out.centers), out.depth)
    assert (out.depth >= out.centers[:, 0]).all() and (out.depth <= out.centers[:, -1]).all()


def test_head_rejects_bad_arguments():
    with pytest.raises(ValueError, match="normalization"):
        MetricBinHead(8, normalization="sigmoid")
    head = MetricBinHead(8, n_bins=4, hidden=4)
    with pytest.raises(ValueError, match=r"\[N, F, H, W\]"):
        head(torch.randn(8, 5, 5))


@pytest.mark.parametrize("n_bins", [2, 16, 64])
def test_fused_log_binomial_equals_reference_incl_extremes(n_bins):
    from recon.heads.metric_bins import log_binomial_probs_fused

    torch.manual_seed(3)
    z = torch.randn(3, 2, 5, 7) * 6  # saturated sigmoids: q at the clamp, temperatures near both ends
    q = torch.sigmoid(z[:, :1])
    q[0, 0, 0, :2] = torch.tensor([0.0, 1.0])
    t = 0.0212 + (50.0 - 0.0212) * torch.sigmoid(z[:, 1:2])
    ref = log_binomial_probs(q, t, n_bins)
    got = log_binomial_probs_fused(q, t, n_bins)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.sum(1), torch.ones(3, 5, 7))


def test_refined_centers_are_the_selected_products():
    torch.manual_seed(4)
    seeds = seed_bin_centers(8, 0.1, 10.0)
    lower, upper = center_shift_bounds(seeds, 0.45)
    raw = torch.randn(2, 8, 3, 4) * 3
    t = torch.tanh(raw)
    view = (1, -1, 1, 1)
    direct = seeds.view(view) + torch.where(t >= 0, t * upper.view(view), t * lower.view(view))
    assert torch.equal(refine_bin_centers(seeds, raw, lower, upper), direct)
