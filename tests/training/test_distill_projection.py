"""``train.distill.identity_projection``: a teacher of the student's width is distilled without projection."""

import numpy as np
import torch
from torch import nn

from tests.helpers import micro_run_overrides
from tests.training.test_shipped_configs import _batch
from vidllm.config import config_from_dict
from vidllm.training.module import DistillHeads, VidLLMModule


def _stage1_module(synthetic_root, teacher_files, tokenizer, identity: bool) -> VidLLMModule:
    from tests.helpers import micro_config

    overrides = micro_run_overrides(synthetic_root, teacher_files)
    overrides["train"]["stage"] = 1
    overrides["train"]["distill"]["identity_projection"] = identity
    overrides["cta"] = {"identity_init": identity}
    cfg = config_from_dict(overrides, source="test", base=micro_config())
    torch.manual_seed(0)
    return VidLLMModule(cfg, tokenizer)


def test_distill_heads_identity_only_for_equal_widths():
    heads = DistillHeads(8, {"geometry": 8, "semantic": 6}, identity_when_equal=True)
    assert isinstance(heads["geometry"], nn.Identity) and isinstance(heads["semantic"], nn.Linear)
    paper = DistillHeads(8, {"geometry": 8, "semantic": 6})
    assert isinstance(paper["geometry"], nn.Linear) and isinstance(paper["semantic"], nn.Linear)


def test_geometry_term_without_projection_equals_direct_numpy(synthetic_root, teacher_files, tokenizer):
    module = _stage1_module(synthetic_root, teacher_files, tokenizer, identity=True)
    assert isinstance(module.distill_heads["geometry"], nn.Identity)
    assert module.teachers["geometry"].hidden_size == module.config.encoder.hidden_size
    batch = _batch(module.config)
    losses = module.stage1_losses(batch)
    with torch.no_grad():
        streams = module.model.encode_streams(batch["images"])
        b, s, p, c = streams["t_geom"].shape
        stu = streams["t_geom"].reshape(b * s, p, c).double().numpy()
        tea = module.teachers["geometry"](batch["images"]).double().numpy()
    # identity-initialised CTA: T'_geom is T_base exactly
    assert torch.equal(streams["t_geom"], streams["t_base"])
    norm = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    ref = np.mean(np.sum((norm(stu) - norm(tea)) ** 2, axis=-1))
    np.testing.assert_allclose(float(losses["geo"].detach()), ref, rtol=1e-5, atol=1e-6)
    losses["loss"].backward()
    grads = [q.grad for q in module.model.encoder.parameters() if q.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert module.model.cta.phi_geom.fc2.weight.grad.abs().sum() > 0
    # the optimiser keeps the semantic teacher's projection and gets no empty group
    opt = module.configure_optimizers()["optimizer"]
    names = [g.get("name") for g in opt.param_groups]
    assert "distill_heads" in names and all(len(g["params"]) for g in opt.param_groups)


def test_stage1_encodes_through_model_forward(synthetic_root, teacher_files, tokenizer, monkeypatch):
    """Stage 1 reads the streams from ``VidLLM.forward(streams_only=True)``: the encoder and CTA run once,
    the reconstruction branch not at all."""
    module = _stage1_module(synthetic_root, teacher_files, tokenizer, identity=True)
    batch = _batch(module.config)
    calls, recons = [], []
    forward, reconstruct = module.model.forward, module.model.reconstruct_streams
    monkeypatch.setattr(module.model, "forward", lambda *a, **k: calls.append(k) or forward(*a, **k))
    monkeypatch.setattr(module.model, "reconstruct_streams", lambda *a, **k: recons.append(1) or reconstruct(*a, **k))
    losses = module.stage1_losses(batch)
    assert calls == [{"streams_only": True}] and recons == []
    with torch.no_grad():
        out = forward(batch["images"], streams_only=True)
    assert out.pose_enc is None and out.depth is None and out.t_lang is None
    assert set(out.streams) >= {"t_base", "t_geom", "t_lang"} and torch.isfinite(losses["loss"])
