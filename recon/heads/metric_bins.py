"""Metric-bin head of the Metric Depth Model (paper §3.2).

Decoder features ``[N, F, H, W]`` → per-pixel distribution over ``K`` depth bins and per-pixel
refined bin centres; the metric depth is the expectation ``d(i) = Σ_k p_i(k) · c_i(k)``.

Bin probabilities (ordinal-aware normalisation)
-----------------------------------------------
* ``"log_binomial"`` (default, as ZoeDepth): per pixel a success probability ``q ∈ (0, 1)`` and a
  temperature ``t ∈ [t_min, t_max]`` are predicted; with ``n = K − 1`` the bin logits are the
  binomial log-pmf ``ℓ_k = log C(n, k) + k·log q + (n − k)·log(1 − q)`` (exact, via ``lgamma``)
  and ``p(k) = softmax_k(ℓ_k / t)``. The distribution is unimodal in ``k`` by construction, so
  neighbouring bins get neighbouring mass (ordinal awareness). ``q = sigmoid(z_q)`` and
  ``t = t_min + (t_max − t_min)·sigmoid(z_t)`` (a sigmoid instead of ZoeDepth's softplus ratio: it
  cannot produce 0/0 under extreme inputs).
* ``"softmax"``: ``p(k) = softmax_k(z_k)`` over ``K`` predicted logits.

Bin centres
-----------
Seed centres ``c_k`` are log-spaced over ``[min_depth, max_depth]``. The refinement
``c_i(k) = c_k + Δc_i(k)`` uses ``Δc_i(k) = tanh(r_k(F_i)) · g_k`` where ``g_k`` is
``β·(c_{k+1} − c_k)`` for a positive ``tanh`` and ``β·(c_k − c_{k−1})`` for a negative one
(``β = center_shift_bound < 0.5``; the virtual neighbours ``c_{−1} = c_0 / ρ`` and
``c_K = c_{K−1}·ρ`` use the log-spacing ratio ``ρ``). Every refined centre stays strictly inside
the half-gaps around its seed, so centres stay positive and strictly increasing in ``k`` for any
input, even where ``tanh`` saturates.

The normalisation, the centres and the expectation are computed in float32 (autocast off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from recon.config import NORMALIZATIONS

__all__ = [
    "NORMALIZATIONS",
    "MetricBins",
    "MetricBinHead",
    "seed_bin_centers",
    "center_shift_bounds",
    "refine_bin_centers",
    "log_binomial_logits",
    "log_binomial_probs",
    "log_binomial_probs_fused",
    "expected_depth",
]

_Q_EPS = 1e-6


def seed_bin_centers(n_bins: int, min_depth: float, max_depth: float) -> Tensor:
    """Seed centres ``[K]`` log-spaced over ``[min_depth, max_depth]`` (float32; computed in float64)."""
    if n_bins < 2 or not 0 < min_depth < max_depth:
        raise ValueError(
            f"seed_bin_centers needs n_bins >= 2 and 0 < min_depth < max_depth, got {n_bins}, {min_depth}, {max_depth}"
        )
    logs = torch.linspace(math.log(min_depth), math.log(max_depth), n_bins, dtype=torch.float64)
    return logs.exp().float()


def center_shift_bounds(seeds: Tensor, bound: float) -> tuple[Tensor, Tensor]:
    """Largest downward and upward shifts ``([K], [K])`` of each seed centre.

    ``lower_k = β·(c_k − c_{k−1})`` and ``upper_k = β·(c_{k+1} − c_k)``, with virtual neighbours
    one log-spacing step beyond both ends.
    """
    if not 0.0 < bound < 0.5:
        raise ValueError(f"center_shift_bound must be in (0, 0.5), got {bound!r}")
    seeds64 = seeds.double()
    ratio = seeds64[1] / seeds64[0]
    extended = torch.cat([seeds64[:1] / ratio, seeds64, seeds64[-1:] * ratio])
    lower = bound * (seeds64 - extended[:-2])
    upper = bound * (extended[2:] - seeds64)
    return lower.to(seeds.dtype), upper.to(seeds.dtype)


def refine_bin_centers(seeds: Tensor, raw: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
    """Refined centres ``c_i(k) = c_k + Δc_i(k)`` with ``Δc = tanh(raw)·(upper if ≥ 0 else lower)``.

    Args:
        seeds, lower, upper: ``[K]``.
        raw: ``[N, K, H, W]`` unbounded offsets ``r_k(F_i)``.
    Returns:
        ``[N, K, H, W]`` centres, strictly increasing along ``K``.
    """
    view = (1, -1, 1, 1)
    t = torch.tanh(raw)
    gap = torch.where(t >= 0, upper.view(view), lower.view(view))  # the same products as selecting t·upper / t·lower
    return seeds.view(view) + t * gap


def log_binomial_logits(q: Tensor, n_bins: int) -> Tensor:
    """Binomial log-pmf ``log C(n,k) + k log q + (n−k) log(1−q)``, ``n = K − 1``.

    Args:
        q: ``[N, 1, H, W]`` success probabilities in ``[0, 1]`` (clamped to ``[1e-6, 1 − 1e-6]``).
        n_bins: ``K``.
    Returns:
        ``[N, K, H, W]`` log-probabilities (float32).
    """
    q = q.float()
    n = n_bins - 1
    k = torch.arange(n_bins, device=q.device, dtype=torch.float32).view(1, -1, 1, 1)
    log_comb = math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
    q = q.clamp(_Q_EPS, 1.0 - _Q_EPS)  # clamp before the logs: finite values and gradients
    log_q = torch.log(q)
    log_1mq = torch.log1p(-q)
    return log_comb + k * log_q + (n - k) * log_1mq


def log_binomial_probs(q: Tensor, temperature: Tensor | float, n_bins: int) -> Tensor:
    """Log-binomial bin probabilities ``softmax_k(ℓ_k / t)``.

    Args:
        q: ``[N, 1, H, W]`` in ``[0, 1]``.
        temperature: ``[N, 1, H, W]`` or a float, ``> 0``.
        n_bins: ``K``.
    Returns:
        ``[N, K, H, W]`` probabilities summing to one over ``K``.
    """
    logits = log_binomial_logits(q, n_bins)
    if isinstance(temperature, Tensor):
        temperature = temperature.float()
    return torch.softmax(logits / temperature, dim=1)


def log_binomial_probs_fused(q: Tensor, temperature: Tensor, n_bins: int) -> Tensor:
    """:func:`log_binomial_probs` with the ``K`` tempered logits built by one small matrix product.

    ``ℓ_k / t = log C(n, k)·(1/t) + k·(log q / t) + (n − k)·(log(1 − q) / t)`` is a fixed ``[K, 3]``
    coefficient matrix times three per-pixel features, so the ``[N, K, H, W]`` logits are written
    once instead of through five full-size elementwise passes (the same value up to float rounding).

    Args:
        q: ``[N, 1, H, W]`` in ``[0, 1]``; temperature: ``[N, 1, H, W]``, ``> 0``; n_bins: ``K``.
    Returns:
        ``[N, K, H, W]`` probabilities summing to one over ``K``.
    """
    q = q.float().clamp(_Q_EPS, 1.0 - _Q_EPS)
    inv_t = 1.0 / temperature.float()
    n = n_bins - 1
    k = torch.arange(n_bins, device=q.device, dtype=torch.float32)
    log_comb = math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
    coeff = torch.stack([log_comb, k, n - k], dim=1)  # [K, 3]
    feats = torch.cat([inv_t, torch.log(q) * inv_t, torch.log1p(-q) * inv_t], dim=1)  # [N, 3, H, W]
    logits = torch.matmul(coeff, feats.flatten(2))  # [N, K, H·W]
    return torch.softmax(logits, dim=1).view(q.shape[0], n_bins, *q.shape[2:])


def expected_depth(probs: Tensor, centers: Tensor) -> Tensor:
    """``d = Σ_k p(k)·c(k)``: ``[N, K, H, W] × [N, K, H, W] → [N, H, W]``."""
    return (probs * centers).sum(dim=1)


@dataclass
class MetricBins:
    """Output of :class:`MetricBinHead`.

    Attributes:
        depth: ``[N, H, W]`` metric depth in metres.
        probs: ``[N, K, H, W]`` bin probabilities.
        centers: ``[N, K, H, W]`` refined bin centres in metres.
    """

    depth: Tensor
    probs: Tensor
    centers: Tensor


class MetricBinHead(nn.Module):
    """Decoder features ``[N, F, H, W]`` → :class:`MetricBins` (per-pixel bins and refined centres).

    A shared 3×3 conv + ReLU stem (``F → hidden``) feeds two per-pixel MLPs (1×1 convs):
    the probability branch (2 outputs ``z_q, z_t`` for log-binomial, ``K`` logits for softmax) and
    the centre-offset branch (``K`` outputs; its last layer starts at zero so centres start at
    the seeds).
    """

    def __init__(
        self,
        in_channels: int,
        n_bins: int = 64,
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
        normalization: str = "log_binomial",
        hidden: int = 64,
        center_shift_bound: float = 0.45,
        min_temperature: float = 0.0212,
        max_temperature: float = 50.0,
    ) -> None:
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"metric_depth.normalization = {normalization!r}; expected one of {list(NORMALIZATIONS)}")
        if not 0 < min_temperature < max_temperature:
            raise ValueError(f"need 0 < min_temperature < max_temperature, got {min_temperature}, {max_temperature}")
        self.n_bins = n_bins
        self.normalization = normalization
        self.min_temperature = float(min_temperature)
        self.max_temperature = float(max_temperature)
        seeds = seed_bin_centers(n_bins, min_depth, max_depth)
        lower, upper = center_shift_bounds(seeds, center_shift_bound)
        self.register_buffer("seeds", seeds, persistent=False)
        self.register_buffer("shift_lower", lower, persistent=False)
        self.register_buffer("shift_upper", upper, persistent=False)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU())
        n_prob = 2 if normalization == "log_binomial" else n_bins
        self.prob_mlp = nn.Sequential(nn.Conv2d(hidden, hidden, 1), nn.GELU(), nn.Conv2d(hidden, n_prob, 1))
        self.center_mlp = nn.Sequential(nn.Conv2d(hidden, hidden, 1), nn.GELU(), nn.Conv2d(hidden, n_bins, 1))
        nn.init.zeros_(self.center_mlp[-1].weight)
        nn.init.zeros_(self.center_mlp[-1].bias)

    def probabilities(self, prob_out: Tensor) -> Tensor:
        """Raw probability-branch output ``[N, 2 or K, H, W]`` → bin probabilities ``[N, K, H, W]`` (float32)."""
        prob_out = prob_out.float()
        if self.normalization == "softmax":
            return torch.softmax(prob_out, dim=1)
        q = torch.sigmoid(prob_out[:, :1])
        temperature = self.min_temperature + (self.max_temperature - self.min_temperature) * torch.sigmoid(
            prob_out[:, 1:2]
        )
        return log_binomial_probs_fused(q, temperature, self.n_bins)

    def forward(self, features: Tensor) -> MetricBins:
        """Args: features ``[N, F, H, W]``. Returns: :class:`MetricBins` at ``H × W``."""
        if features.ndim != 4:
            raise ValueError(f"MetricBinHead expects features [N, F, H, W], got shape {tuple(features.shape)}")
        x = self.stem(features)
        prob_out = self.prob_mlp(x)
        raw_shift = self.center_mlp(x)
        with torch.autocast(device_type=features.device.type, enabled=False):
            probs = self.probabilities(prob_out)
            centers = refine_bin_centers(self.seeds, raw_shift.float(), self.shift_lower, self.shift_upper)
            depth = expected_depth(probs, centers)
        return MetricBins(depth=depth, probs=probs, centers=centers)
