"""recon.sim3: Sim(3) algebra against 4×4 matrices and a robust fit recovering known transforms."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from recon.geometry import depth_to_world_points
from recon.sim3 import Sim3, estimate_sim3


def _sim(seed: int, scale: float) -> Sim3:
    rot = torch.from_numpy(Rotation.random(random_state=seed).as_matrix())
    trans = torch.from_numpy(np.random.default_rng(seed).normal(size=3))
    return Sim3(torch.tensor(scale, dtype=torch.float64), rot, trans)


def test_compose_inverse_apply_match_matrices():
    a, b = _sim(0, 2.5), _sim(1, 0.3)
    pts = torch.from_numpy(np.random.default_rng(2).normal(size=(20, 3)))
    hom = torch.cat([pts, torch.ones(20, 1, dtype=torch.float64)], 1)
    torch.testing.assert_close(a.apply(pts), (hom @ a.matrix().T)[:, :3])
    torch.testing.assert_close(a.compose(b).matrix(), a.matrix() @ b.matrix())
    torch.testing.assert_close(a.inverse().matrix(), torch.linalg.inv(a.matrix()))
    torch.testing.assert_close(a.compose(a.inverse()).matrix(), torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(Sim3.identity().apply(pts), pts)


def test_extrinsics_and_depth_map_world_points_by_the_transform():
    """Unprojecting the transformed depth with the transformed extrinsics gives s·R·x + t (Eq. 4)."""
    sim = _sim(3, 1.7)
    rots = torch.from_numpy(Rotation.random(4, random_state=4).as_matrix())
    ext = torch.cat([rots, torch.randn(4, 3, 1, dtype=torch.float64)], -1)
    k = torch.tensor([[20.0, 0, 4], [0, 20.0, 3], [0, 0, 1]], dtype=torch.float64).expand(4, 3, 3)
    depth = torch.rand(4, 6, 8, dtype=torch.float64) + 0.5
    before = depth_to_world_points(depth, ext, k)
    after = depth_to_world_points(sim.transform_depth(depth), sim.transform_extrinsics(ext), k)
    torch.testing.assert_close(after, sim.apply(before))
    assert sim.transform_extrinsics(ext.float()).dtype == torch.float32


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_fit_recovers_known_sim3(dtype, tol):
    truth = _sim(5, 3.2)
    src = torch.from_numpy(np.random.default_rng(6).normal(size=(5000, 3)))
    dst = truth.apply(src)
    weights = torch.rand(5000, dtype=torch.float64) + 0.1
    fit = estimate_sim3(src.to(dtype), dst.to(dtype), weights.to(dtype), max_points=1000)
    torch.testing.assert_close(fit.matrix(), truth.matrix(), atol=tol, rtol=tol)


def test_low_confidence_outliers_are_dropped_and_huber_limits_the_rest():
    truth = _sim(7, 0.6)
    rng = np.random.default_rng(8)
    src = torch.from_numpy(rng.normal(size=(4000, 3)))
    dst = truth.apply(src)
    bad = torch.from_numpy(rng.random(4000) < 0.2)
    dst_bad = torch.where(bad[:, None], dst + 5.0 * torch.from_numpy(rng.normal(size=(4000, 3))), dst)
    conf = torch.where(
        bad, torch.full((4000,), 1.5, dtype=torch.float64), torch.full((4000,), 3.0, dtype=torch.float64)
    )
    exact = estimate_sim3(src, dst_bad, conf, conf_quantile=0.5)  # the outliers are all below the median weight
    torch.testing.assert_close(exact.matrix(), truth.matrix(), atol=1e-10, rtol=1e-10)
    plain = estimate_sim3(src, dst_bad, None, conf_quantile=0.0, iterations=0)
    robust = estimate_sim3(src, dst_bad, None, conf_quantile=0.0, iterations=5)
    err = lambda s: float((s.matrix() - truth.matrix()).abs().max())  # noqa: E731
    assert err(robust) < 0.5 * err(plain)


def test_non_finite_and_zero_weight_pairs_are_ignored():
    truth = _sim(9, 1.3)
    src = torch.from_numpy(np.random.default_rng(10).normal(size=(100, 3)))
    dst = truth.apply(src)
    dst[:10] = float("nan")
    src[10:20] = float("inf")
    weights = torch.ones(100, dtype=torch.float64)
    weights[20:30] = 0.0
    dst[20:30] += 100.0  # zero weight: never votes
    fit = estimate_sim3(src, dst, weights, conf_quantile=0.0)
    torch.testing.assert_close(fit.matrix(), truth.matrix())


def test_bad_inputs_have_clear_errors():
    pts = torch.randn(10, 3)
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        estimate_sim3(pts, torch.randn(9, 3))
    with pytest.raises(ValueError, match="weights must be"):
        estimate_sim3(pts, pts, torch.ones(3))
    with pytest.raises(ValueError, match="conf_quantile"):
        estimate_sim3(pts, pts, conf_quantile=1.0)
    nan = torch.full((10, 3), float("nan"))
    with pytest.raises(ValueError, match="need at least 3"):
        estimate_sim3(nan, nan)
    with pytest.raises(ValueError, match="degenerate"):
        estimate_sim3(torch.zeros(10, 3), torch.zeros(10, 3), conf_quantile=0.0)
