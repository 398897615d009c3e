"""recon.weights_file.unwrap_state_dict: the one checkpoint unwrapper (VGGT loader and vidllm.io.load_state_dict)."""

import pytest
import torch

from recon.weights_file import strip_prefix, unwrap_state_dict

W = torch.ones(2)


@pytest.mark.parametrize(
    "obj",
    [
        {"a.w": W},  # already flat
        {"state_dict": {"a.w": W}, "epoch": 3, "global_step": 10},  # Lightning
        {"model": {"a.w": W}, "optimizer": {"lr": 0.1}},  # training bundle
        {"state_dict": {"model": {"a.w": W}}},  # state_dict, then model
        {"module.a.w": W},  # DDP prefix
        {"state_dict": {"module.a.w": W}},  # Lightning around DDP
    ],
    ids=["flat", "state_dict", "model", "state_dict-model", "module-prefix", "state_dict-module-prefix"],
)
def test_unwrap_cases(obj):
    assert list(unwrap_state_dict(obj)) == ["a.w"]
    assert unwrap_state_dict(obj)["a.w"] is W


def test_only_the_leading_module_prefix_is_removed():
    assert list(unwrap_state_dict({"module.module.x": W, "encoder.module.y": W})) == ["module.x", "encoder.module.y"]


def test_a_dict_holding_tensors_is_never_a_wrapper():
    with pytest.raises(ValueError, match="expected a dict of tensors"):
        unwrap_state_dict({"aggregator.camera_token": W, "model": {"x": W}})


@pytest.mark.parametrize("obj", [[W], {"state_dict": [W]}, {"w": W, "step": 3}])
def test_not_a_state_dict(obj):
    with pytest.raises(ValueError, match=r"expected a dict of tensors \(a state dict\), got"):
        unwrap_state_dict(obj)


def test_strip_prefix_keeps_only_the_prefixed_keys():
    assert strip_prefix({"model.a": W, "model.b.c": W, "distill_heads.x": W, "modelx": W}, "model.") == {
        "a": W,
        "b.c": W,
    }


def test_both_loaders_read_every_wrapper_the_same(tmp_path):
    from recon.vggt_loader import load_state_dict_file
    from vidllm.io import load_state_dict

    for i, obj in enumerate(
        [{"state_dict": {"module.a.w": W}}, {"model": {"a.w": W}}, {"state_dict": {"model": {"a.w": W}}}]
    ):
        path = tmp_path / f"{i}.pt"
        torch.save(obj, path)
        assert list(load_state_dict(path)) == list(load_state_dict_file(path)) == ["a.w"]
