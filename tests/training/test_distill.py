"""Stage-1 distillation losses (Eq. 5–7) against direct NumPy computations."""

import numpy as np
import pytest
import torch

from vidllm.training.distill import (
    distillation_loss,
    geometry_distill_loss,
    resample_tokens,
    semantic_distill_loss,
    structural_consistency_loss,
)


def _norm(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_geometry_loss_matches_numpy():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(3, 10, 8)), rng.normal(size=(3, 10, 8))
    ref = np.mean(np.sum((_norm(s) - _norm(t)) ** 2, axis=-1))
    assert float(geometry_distill_loss(torch.from_numpy(s), torch.from_numpy(t))) == pytest.approx(ref, rel=1e-5)
    assert float(geometry_distill_loss(torch.from_numpy(s), torch.from_numpy(2 * s))) == pytest.approx(0.0, abs=1e-6)


def test_semantic_loss_matches_numpy():
    rng = np.random.default_rng(1)
    s, t = rng.normal(size=(4, 10, 6)), rng.normal(size=(4, 7, 6))
    ps, pt = s.mean(1), t.mean(1)
    cos = (ps * pt).sum(-1) / (np.linalg.norm(ps, axis=-1) * np.linalg.norm(pt, axis=-1))
    assert float(semantic_distill_loss(torch.from_numpy(s), torch.from_numpy(t))) == pytest.approx(
        np.mean(1 - cos), rel=1e-5
    )


def _sc_numpy(sg, sl, tg, tl):
    out = []
    for f in range(sg.shape[0]):
        zs = np.concatenate([_norm(sg[f]), _norm(sl[f])], 0)
        zt = np.concatenate([_norm(tg[f]), _norm(tl[f])], 0)
        m = zs.shape[0]
        out.append(np.sum((zs @ zs.T - zt @ zt.T) ** 2) / m**2)
    return np.mean(out)


def test_structural_consistency_matches_explicit_similarity_matrices():
    rng = np.random.default_rng(2)
    sg, sl = rng.normal(size=(2, 9, 5)), rng.normal(size=(2, 9, 5))
    tg, tl = rng.normal(size=(2, 9, 7)), rng.normal(size=(2, 9, 7))  # student and teacher widths differ
    got = structural_consistency_loss(*(torch.from_numpy(a) for a in (sg, sl, tg, tl)))
    assert float(got) == pytest.approx(_sc_numpy(sg, sl, tg, tl), rel=1e-8)
    same = structural_consistency_loss(*(torch.from_numpy(a) for a in (sg, sl, sg, sl)))
    assert float(same) == pytest.approx(0.0, abs=1e-10)


def test_structural_consistency_block_only_when_teacher_widths_differ():
    rng = np.random.default_rng(3)
    sg, sl = rng.normal(size=(1, 6, 4)), rng.normal(size=(1, 6, 4))
    tg, tl = rng.normal(size=(1, 6, 5)), rng.normal(size=(1, 6, 3))
    zsg, zsl, ztg, ztl = _norm(sg[0]), _norm(sl[0]), _norm(tg[0]), _norm(tl[0])
    ref = (np.sum((zsg @ zsg.T - ztg @ ztg.T) ** 2) + np.sum((zsl @ zsl.T - ztl @ ztl.T) ** 2)) / 12**2
    got = structural_consistency_loss(*(torch.from_numpy(a) for a in (sg, sl, tg, tl)))
    assert float(got) == pytest.approx(ref, rel=1e-8)


def test_resample_tokens_identity_and_constant():
    tokens = torch.randn(2, 12, 3)
    assert resample_tokens(tokens, (3, 4), (3, 4)) is tokens
    const = torch.ones(1, 24, 2) * torch.tensor([2.0, -1.0])
    out = resample_tokens(const, (4, 6), (3, 5))
    assert out.shape == (1, 15, 2)
    torch.testing.assert_close(out, torch.ones(1, 15, 2) * torch.tensor([2.0, -1.0]))
    with pytest.raises(ValueError, match="grid"):
        resample_tokens(tokens, (5, 5), (2, 2))


def test_total_distillation_loss_and_gradients():
    torch.manual_seed(0)
    sg = torch.randn(2, 12, 8, requires_grad=True)
    sl = torch.randn(2, 12, 8, requires_grad=True)
    proj_g, proj_l = torch.nn.Linear(8, 6), torch.nn.Linear(8, 6)
    tg, tl = torch.randn(2, 12, 6), torch.randn(2, 20, 6)
    out = distillation_loss(proj_g(sg), proj_l(sl), sg, sl, tg, tl, (3, 4), (4, 5), lambda_sc=0.5)
    torch.testing.assert_close(out["loss"], out["geo"] + out["lang"] + 0.5 * out["sc"])
    out["loss"].backward()
    assert sg.grad is not None and sg.grad.abs().sum() > 0
    assert proj_l.weight.grad is not None and proj_l.weight.grad.abs().sum() > 0
