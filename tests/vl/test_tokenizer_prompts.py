"""Word-level tokenizer builder and the prompt templates."""

import pytest

from vl.prompts import TASKS, render_prompt, render_prompts
from vl.tokenizer import TOKEN_3D, TOKEN_GROUND, build_word_tokenizer, load_tokenizer


def test_word_tokenizer_save_load_roundtrip(tmp_path):
    tok = build_word_tokenizer(["The red chair is next to the table.", "What colour is the sofa?"], save_dir=tmp_path)
    loaded = load_tokenizer(tmp_path)
    for t in (tok, loaded):
        assert t.pad_token == "<pad>" and t.eos_token == "</s>" and t.bos_token == "<s>" and t.unk_token == "<unk>"
    text = f"{TOKEN_3D} question: what colour is the chair? answer: {TOKEN_GROUND}"
    ids = loaded(text, add_special_tokens=False)["input_ids"]
    assert ids == tok(text, add_special_tokens=False)["input_ids"]
    assert loaded.unk_token_id not in ids
    assert ids[0] == loaded.convert_tokens_to_ids(TOKEN_3D) and ids[-1] == loaded.convert_tokens_to_ids(TOKEN_GROUND)
    assert loaded.decode(ids, skip_special_tokens=True) == "question : what colour is the chair? answer :"
    assert loaded("zebra", add_special_tokens=False)["input_ids"] == [loaded.unk_token_id]
    with pytest.raises(ValueError, match="does not exist"):
        load_tokenizer(tmp_path / "missing")


def test_prompts_cover_all_tasks_and_tokenize_without_unknowns():
    prompts = render_prompts(
        list(TASKS),
        questions=["what is it?", "which way?", None, None],
        situations=[None, "i sit on the bed .", None, None],
        descriptions=[None, None, None, "the red chair"],
        centers=[None, None, [1.23, -0.5, 2.0], None],
    )
    assert all(p.count(TOKEN_3D) == 1 for p in prompts)
    assert prompts[1] == f"{TOKEN_3D} situation: i sit on the bed . question: which way? answer:"
    assert prompts[2] == f"{TOKEN_3D} describe the object at x 1.2 y -0.5 z 2.0 . answer:"
    tok = build_word_tokenizer(["what is it which way i sit on bed red chair"])
    for p in prompts:
        assert tok.unk_token_id not in tok(p, add_special_tokens=False)["input_ids"], p
    with pytest.raises(ValueError, match="task"):
        render_prompt("dance")
