"""Shared tiny fixtures: a word-level tokenizer and a tiny Qwen2 LM saved to a temp directory."""

import pytest

from vl.config import LLMConfig
from vl.llm import build_tiny_causal_lm
from vl.tokenizer import build_word_tokenizer

CORPUS = [
    "the red chair is next to the blue table .",
    "what colour is the sofa ? it is green .",
    "how many chairs are in the room ? two",
    "i am sitting on the bed facing the door .",
]


def tiny_llm_config(**kw) -> LLMConfig:
    base = dict(
        finetune="full",
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=64,
        max_length=256,
        max_new_tokens=6,
    )
    base.update(kw)
    return LLMConfig(**base)


@pytest.fixture(name="tiny_llm_config", scope="session")
def tiny_llm_config_fixture():
    """The factory :func:`tiny_llm_config` (keyword overrides → LLMConfig)."""
    return tiny_llm_config


@pytest.fixture(scope="session")
def word_tokenizer():
    return build_word_tokenizer(CORPUS)


@pytest.fixture(scope="session")
def saved_llm_dir(tmp_path_factory, word_tokenizer):
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_qwen2")
    model = build_tiny_causal_lm(tiny_llm_config(), word_tokenizer)
    model.save_pretrained(str(path))
    word_tokenizer.save_pretrained(str(path))
    return path
