"""recon.compiled: the frozen-weight compiled forward equals the eager forward within the parity tolerance."""

import pytest
import torch

from recon.compiled import COMPILE_MODES, compile_for_inference
from recon.model import ReconstructionModel
from tests.helpers import tiny_recon_model


def _tiny_recon() -> ReconstructionModel:
    return tiny_recon_model().train()  # compile_for_inference must switch it to eval


def test_mode_none_is_the_eager_module_without_grad():
    model = _tiny_recon()
    run = compile_for_inference(model, "none")
    images = torch.rand(1, 2, 3, 56, 56, generator=torch.Generator().manual_seed(1))
    out = run(images)
    assert not model.training
    assert not out["depth"].requires_grad
    with torch.no_grad():
        ref = model(images)
    assert torch.equal(out["depth"], ref["depth"]) and torch.equal(out["pose_enc"], ref["pose_enc"])


def test_bad_mode_names_the_choices():
    with pytest.raises(ValueError, match=r"compile mode = 'fast'; expected one of \['none', 'default'"):
        compile_for_inference(_tiny_recon(), "fast")
    assert COMPILE_MODES == ("none", "default", "max-autotune")


@pytest.mark.slow
def test_compiled_forward_matches_eager_within_parity_tolerance():
    """One graph (no graph break: the RoPE table length comes from the grid, not a tensor read) and outputs
    within the 1e-5 relative tolerance of the VGGT parity tests (one input shape: each new shape recompiles, which
    takes minutes on a loaded 2-core machine)."""
    torch._dynamo.reset()
    model = _tiny_recon()
    explained = torch._dynamo.explain(model.eval())(torch.rand(1, 2, 3, 56, 56))
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]
    run = compile_for_inference(model, "default")
    images = torch.rand(1, 2, 3, 56, 56, generator=torch.Generator().manual_seed(2))
    out = run(images)
    with torch.no_grad():
        ref = model(images)
    for key in ("pose_enc", "depth", "depth_conf"):
        err = (out[key] - ref[key]).abs().max() / ref[key].abs().max()
        assert err < 1e-5, (key, float(err))
