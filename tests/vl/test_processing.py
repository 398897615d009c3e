"""The text processor (vl/processing.py): hand tokenisation, placeholder, labels, padding; the LM's splice of its
output equals the former per-sample string path; the collate encodes the VL samples' text."""

import pytest
import torch

from vl.llm import LanguageModel
from vl.processing import VidLLMProcessor, is_encoded, render_record
from vl.tokenizer import TOKEN_3D, TOKEN_GROUND

PROMPTS = [
    f"{TOKEN_3D} question: what colour is the sofa ? answer:",
    f"{TOKEN_3D} find the object : the red chair answer:",
    "how many chairs ?",
]
ANSWERS = ["it is green .", TOKEN_GROUND, "two"]


@pytest.fixture()
def lm(tiny_llm_config, word_tokenizer):
    return LanguageModel(tiny_llm_config(), vision_dim=16, tokenizer=word_tokenizer)


def _hand(tok, text):
    """Independent word-level tokenisation: lower-cased words / punctuation looked up in the vocabulary."""
    vocab = tok.get_vocab()
    out = []
    for word in text.lower().replace("?", " ? ").replace(":", " : ").replace(".", " . ").split():
        out.append(vocab[word] if word in vocab else tok.unk_token_id)
    return out


def test_processor_matches_hand_tokenisation(lm):
    proc = lm.processor
    tok = lm.tokenizer
    enc = proc(PROMPTS, ANSWERS)
    bos, eos, pad, t3d = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, lm.token_3d_id
    prompts = [
        [bos, t3d] + _hand(tok, PROMPTS[0][len(TOKEN_3D) :]),
        [bos, t3d] + _hand(tok, PROMPTS[1][len(TOKEN_3D) :]),
        [bos] + _hand(tok, PROMPTS[2]),
    ]
    answers = [_hand(tok, ANSWERS[0]) + [eos], [lm.token_ground_id, eos], _hand(tok, ANSWERS[2]) + [eos]]
    length = max(len(p) + len(a) for p, a in zip(prompts, answers))
    assert enc["input_ids"].shape == enc["labels"].shape == enc["attention_mask"].shape == (3, length)
    for b, (p, a) in enumerate(zip(prompts, answers)):
        n = len(p) + len(a)
        assert enc["input_ids"][b].tolist() == p + a + [pad] * (length - n)  # right padding
        assert enc["attention_mask"][b].tolist() == [1] * n + [0] * (length - n)
        want = [-100] * len(p) + a + [-100] * (length - n)
        if a[0] == lm.token_ground_id:
            want[len(p) + 1] = -100  # no next-token target right after <ground>
        assert enc["labels"][b].tolist() == want  # the prompt is masked
        assert int(enc["prompt_length"][b]) == len(p)
        q = [t for t in p if t != t3d]
        assert enc["question_ids"][b, : len(q)].tolist() == q and int(enc["question_mask"][b].sum()) == len(q)
    assert enc["placeholder"].tolist() == [1, 1, -1]
    assert is_encoded(enc) and not is_encoded(PROMPTS)
    gen = proc(PROMPTS)  # generation: prompts only, no labels
    assert (gen["labels"] == -100).all() and gen["attention_mask"].sum(1).tolist() == [len(p) for p in prompts]
    with pytest.raises(ValueError, match="placeholders"):
        proc([f"{TOKEN_3D} {TOKEN_3D}"])


def _reference_build_inputs(lm, visual_mask, prompts, answers, left_pad, num_extra, extra_at_end):
    """The former per-sample string path of LanguageModel.build_inputs (before the processor), as an oracle."""
    m = visual_mask.shape[1]
    extra = torch.arange(m, m + num_extra)
    seqs, vidx, labs, plens = [], [], [], []
    for b in range(len(prompts)):
        p = torch.tensor(lm.processor.prompt_ids(prompts[b]))
        a = torch.tensor(lm.processor.answer_ids(answers[b]) if answers is not None else [], dtype=torch.long)
        hit = (p == lm.token_3d_id).nonzero(as_tuple=True)[0]
        k = int(hit[0]) if hit.numel() else p.numel()
        t3 = visual_mask[b].nonzero(as_tuple=True)[0] if hit.numel() else extra[:0]
        last = extra_at_end or not hit.numel()
        neg = lambda n: torch.full((n,), -1, dtype=torch.long)  # noqa: E731
        parts = [
            (p[:k], neg(k)),
            (neg(t3.numel()), t3),
            *([] if last else [(neg(num_extra), extra)]),
            (p[k + 1 :], neg(p[k + 1 :].numel())),
        ]
        parts += [*([(neg(num_extra), extra)] if last else []), (a, neg(a.numel()))]
        ids, vi = (torch.cat(c) for c in zip(*parts))
        after = torch.zeros(a.numel(), dtype=torch.bool)
        after[1:] = a[:-1] == lm.token_ground_id
        plen = ids.numel() - a.numel()
        lab = torch.cat([torch.full((plen,), -100), a.masked_fill(after, -100)])
        mx = lm.cfg.max_length
        seqs.append(ids[:mx]), vidx.append(vi[:mx]), labs.append(lab[:mx]), plens.append(plen)
    length = max(s.numel() for s in seqs)
    pad = lm.tokenizer.pad_token_id
    bsz = len(prompts)
    out = {
        "input_ids": torch.full((bsz, length), pad),
        "visual_index": torch.full((bsz, length), -1),
        "labels": torch.full((bsz, length), -100),
        "attention_mask": torch.zeros(bsz, length, dtype=torch.long),
        "prompt_mask": torch.zeros(bsz, length, dtype=torch.bool),
    }
    for b in range(bsz):
        n = seqs[b].numel()
        sl = slice(length - n, length) if left_pad else slice(0, n)
        out["input_ids"][b, sl] = seqs[b].clamp_min(0).masked_fill(seqs[b] < 0, pad)
        out["visual_index"][b, sl], out["labels"][b, sl], out["attention_mask"][b, sl] = vidx[b], labs[b], 1
        out["prompt_mask"][b, sl.start : sl.start + plens[b]] = (vidx[b][: plens[b]] < 0) & (seqs[b][: plens[b]] >= 0)
    out["position_ids"] = (out["attention_mask"].cumsum(-1) - 1).clamp_min(0)
    return out


@pytest.mark.parametrize("left_pad", [False, True])
@pytest.mark.parametrize("num_extra,extra_at_end", [(0, False), (2, False), (2, True)])
@pytest.mark.parametrize("with_answers", [True, False])
def test_splice_of_processor_output_equals_former_string_path(lm, left_pad, num_extra, extra_at_end, with_answers):
    vis = torch.randn(3, 5, 16)
    mask = torch.tensor([[True, False, True, True, False], [True] * 5, [False, True, False, False, False]])
    answers = ANSWERS if with_answers else None
    enc = lm.processor(PROMPTS, answers)
    got = lm.build_inputs(vis, mask, enc, left_pad=left_pad, num_extra=num_extra, extra_at_end=extra_at_end)
    via_strings = lm.build_inputs(
        vis, mask, PROMPTS, answers, left_pad=left_pad, num_extra=num_extra, extra_at_end=extra_at_end
    )
    want = _reference_build_inputs(lm, mask, PROMPTS, answers, left_pad, num_extra, extra_at_end)
    assert sorted(got) == sorted(want)
    for key in want:
        assert torch.equal(got[key], want[key]) and torch.equal(via_strings[key], want[key]), key
    out_enc, out_str = lm(vis, mask, lm.processor(PROMPTS, ANSWERS)), lm(vis, mask, PROMPTS, ANSWERS)
    assert torch.equal(out_enc["lm_loss"], out_str["lm_loss"]) and torch.equal(
        out_enc["ground_state"], out_str["ground_state"]
    )


def test_truncation_matches_former_path(tiny_llm_config, word_tokenizer):
    lm = LanguageModel(tiny_llm_config(max_length=20), vision_dim=16, tokenizer=word_tokenizer)
    vis, mask = torch.randn(2, 5, 16), torch.ones(2, 5, dtype=torch.bool)
    answers = ["it is green . it is green . it is green .", "two"]
    got = lm.build_inputs(vis, mask, lm.processor(PROMPTS[:2], answers))
    want = _reference_build_inputs(lm, mask, PROMPTS[:2], answers, False, 0, False)
    assert all(torch.equal(got[k], want[k]) for k in want) and got["input_ids"].shape[1] == 20


def test_encoded_text_is_not_retokenised_in_forward(lm, monkeypatch):
    enc = lm.processor(PROMPTS, ANSWERS)
    gen = lm.processor(PROMPTS)
    monkeypatch.setattr(lm.processor, "__call__", None)
    monkeypatch.setattr(lm.processor, "tokenizer", None)  # any tokenisation would fail
    vis, mask = torch.randn(3, 5, 16), torch.ones(3, 5, dtype=torch.bool)
    lm(vis, mask, enc)
    lm.generate(vis, mask, gen, max_new_tokens=2)
    lm.question_states(gen, vis.device)


def test_render_record_uses_the_templates():
    rec = {
        "task": "caption",
        "question": "",
        "situation": "",
        "description": "",
        "answer": "a chair",
        "target_boxes_model": torch.tensor([[0.04, 1.0, -2.0, 1, 1, 1]]),
    }
    assert render_record(rec) == (f"{TOKEN_3D} describe the object at x 0.0 y 1.0 z -2.0 . answer:", "a chair")
    assert render_record({**rec, "task": "grounding", "description": "the bed"}) == (
        f"{TOKEN_3D} find the object : the bed answer:",
        TOKEN_GROUND,
    )
    assert (
        render_record({**rec, "task": "sqa", "question": "q ?", "situation": "s"})[0]
        == f"{TOKEN_3D} situation: s question: q ? answer:"
    )


def test_processor_needs_special_tokens(word_tokenizer):
    from transformers import AutoTokenizer  # noqa: F401

    tok = word_tokenizer
    proc = VidLLMProcessor(tok)
    assert proc.token_3d_id == tok.convert_tokens_to_ids(TOKEN_3D)
