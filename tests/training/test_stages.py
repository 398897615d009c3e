"""Per-stage freezing decided by one function (`apply_stage`), inspected parameter by parameter."""

import pytest

from tests.helpers import micro_config
from vidllm.model import VidLLM
from vidllm.training.stages import apply_stage, trainable_modules


@pytest.fixture(scope="module")
def model(tokenizer):
    return VidLLM(micro_config(**{"llm.finetune": "lora", "llm.lora_r": 2}), tokenizer)


def test_stage1_trains_only_encoder_and_cta(model):
    names = apply_stage(model, 1, "lora")
    assert names and {n.split(".", 1)[0] for n in names} == {"encoder", "cta"}
    assert not any(n.endswith("mask_token") for n in names)
    assert not any(
        p.requires_grad
        for n, p in model.named_parameters()
        if n.startswith(("aggregator", "camera_head", "depth_head", "metric_depth", "vl"))
    )


def test_stage2_lora_trains_everything_but_the_llm_base(model):
    names = set(apply_stage(model, 2, "lora"))
    assert {n.split(".", 1)[0] for n in names} == set(trainable_modules(2))
    llm = [n for n, _ in model.named_parameters() if n.startswith("vl.lm.model.")]
    assert any("lora_" in n for n in llm)
    for n in llm:
        assert (n in names) == ("lora_" in n), n
    assert any(n.startswith("vl.lm.projector") for n in names)


@pytest.mark.parametrize("finetune,llm_trains", [("full", True), ("frozen", False)])
def test_stage2_full_and_frozen_llm(tokenizer, finetune, llm_trains):
    m = VidLLM(micro_config(**{"llm.finetune": finetune}), tokenizer)
    names = set(apply_stage(m, 2, finetune))
    llm = [n for n, _ in m.named_parameters() if n.startswith("vl.lm.model.")]
    assert all((n in names) == llm_trains for n in llm)


def test_unknown_stage():
    with pytest.raises(ValueError, match="stage"):
        trainable_modules(3)


def test_compile_switch_wraps_the_hot_modules_in_place(tokenizer):
    """train.compile: the hot modules are compiled in place, so weights and state-dict keys do not change."""
    from tests.helpers import micro_config
    from vidllm.training.module import COMPILED_MODULES, VidLLMModule

    plain = VidLLMModule(micro_config(**{"train.stage": 2}), tokenizer)
    compiled = VidLLMModule(micro_config(**{"train.stage": 2, "train.compile": True}), tokenizer)
    assert set(compiled.model.state_dict()) == set(plain.model.state_dict())
    for name in COMPILED_MODULES:
        assert getattr(compiled.model, name)._compiled_call_impl is not None, name
        assert getattr(plain.model, name)._compiled_call_impl is None, name
