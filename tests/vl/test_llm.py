"""LLM wrapper: local save/load, 3D-token splicing, answer-only labels, backward, batched generation, LoRA."""

import pytest
import torch

from vl.llm import LanguageModel
from vl.tokenizer import TOKEN_3D

PROMPTS = [
    f"{TOKEN_3D} question: what colour is the sofa ? answer:",
    f"{TOKEN_3D} find the object : the red chair answer:",
]


def _visual(seed=0):
    g = torch.Generator().manual_seed(seed)
    vis = torch.randn(2, 5, 16, generator=g)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    return vis, mask


def test_load_from_directory_forward_backward_generate(tiny_llm_config, saved_llm_dir):
    lm = LanguageModel(tiny_llm_config(path=str(saved_llm_dir)), vision_dim=16)
    assert lm.tokenizer.convert_ids_to_tokens(lm.token_3d_id) == TOKEN_3D
    vis, mask = _visual()
    vis.requires_grad_()
    out = lm(vis, mask, PROMPTS, ["green", "<ground>"])
    assert torch.isfinite(out["lm_loss"]) and out["has_ground"].tolist() == [False, True]
    out["lm_loss"].backward()
    assert vis.grad is not None and vis.grad[0, 3:].abs().sum() == 0  # masked 3D tokens are not used
    assert all(p.grad is not None for p in lm.projector.parameters())
    gen = lm.generate(vis.detach(), mask, PROMPTS, max_new_tokens=4)
    assert len(gen["text"]) == 2 and gen["token_ids"].shape[0] == 2 and gen["token_ids"].shape[1] <= 4


def test_splicing_and_labels(tiny_llm_config, word_tokenizer):
    lm = LanguageModel(tiny_llm_config(), vision_dim=16, tokenizer=word_tokenizer)
    vis, mask = _visual()
    inp = lm.build_inputs(vis, mask, PROMPTS, ["it is green .", "<ground>"])
    n_prompt = [len(lm.processor.prompt_ids(p)) - 1 for p in PROMPTS]
    # sample 0: 3 spliced 3D tokens, sample 1: 5
    assert (inp["visual_index"][0] >= 0).sum() == 3 and (inp["visual_index"][1] >= 0).sum() == 5
    assert inp["visual_index"][0][inp["visual_index"][0] >= 0].tolist() == [0, 1, 2]
    ans0 = word_tokenizer("it is green .", add_special_tokens=False)["input_ids"] + [word_tokenizer.eos_token_id]
    lab0 = inp["labels"][0][inp["labels"][0] != -100].tolist()
    assert lab0 == ans0
    first_label = int((inp["labels"][0] != -100).nonzero()[0])
    assert first_label == n_prompt[0] + 3  # prompt tokens (minus the placeholder) + 3D tokens
    assert inp["attention_mask"][0].sum() == n_prompt[0] + 3 + len(ans0)
    left = lm.build_inputs(vis, mask, PROMPTS, None, left_pad=True)
    assert (
        left["attention_mask"][:, -1].all()
        and (left["position_ids"][0][left["attention_mask"][0] > 0] == torch.arange(n_prompt[0] + 3)).all()
    )


def test_embedding_splice_uses_projected_tokens(tiny_llm_config, word_tokenizer):
    lm = LanguageModel(tiny_llm_config(), vision_dim=16, tokenizer=word_tokenizer)
    vis, mask = _visual()
    inp = lm.build_inputs(vis, mask, PROMPTS, ["green", "<ground>"])
    emb = lm.embed(vis, inp)
    proj = lm.projector(vis)
    b, pos = (inp["visual_index"] >= 0).nonzero()[0].tolist()
    torch.testing.assert_close(emb[b, pos], proj[b, inp["visual_index"][b, pos]])
    t = (inp["visual_index"][0] < 0).nonzero()[0].item()
    torch.testing.assert_close(emb[0, t], lm.model.get_input_embeddings()(inp["input_ids"][0, t]))


def test_lm_loss_matches_full_logits_reference(tiny_llm_config, word_tokenizer):
    torch.manual_seed(0)
    lm = LanguageModel(tiny_llm_config(), vision_dim=16, tokenizer=word_tokenizer)
    vis, mask = _visual()
    out = lm(vis, mask, PROMPTS, ["it is green .", "two"])
    inp = out["inputs"]
    logits = lm.model(
        inputs_embeds=lm.embed(vis, inp), attention_mask=inp["attention_mask"], position_ids=inp["position_ids"]
    ).logits
    ref = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), inp["labels"][:, 1:].reshape(-1), ignore_index=-100
    )
    torch.testing.assert_close(out["lm_loss"], ref, rtol=1e-5, atol=1e-5)


def test_batched_left_padded_generation_matches_single(tiny_llm_config, word_tokenizer):
    torch.manual_seed(3)
    lm = LanguageModel(tiny_llm_config(), vision_dim=16, tokenizer=word_tokenizer)
    with torch.no_grad():
        for p in lm.model.parameters():
            p.mul_(8.0)  # sharper random logits: distinct tokens per step
    vis, mask = _visual(1)
    prompts = [PROMPTS[0], f"{TOKEN_3D} what ?"]
    batched = lm.generate(vis, mask, prompts, max_new_tokens=5)
    for i in range(2):
        single = lm.generate(vis[i : i + 1], mask[i : i + 1], prompts[i : i + 1], max_new_tokens=5)
        n = single["token_ids"].shape[1]
        assert batched["token_ids"][i, :n].tolist() == single["token_ids"][0].tolist()
        assert batched["text"][i] == single["text"][0]


def test_lora_attaches_to_configured_modules(tiny_llm_config, saved_llm_dir):
    lm = LanguageModel(
        tiny_llm_config(path=str(saved_llm_dir), finetune="lora", lora_r=4, lora_target_modules=["q_proj", "v_proj"]),
        vision_dim=16,
    )
    trainable = [n for n, p in lm.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable} == {"q_proj", "v_proj"}
    assert len(trainable) == 2 * 2 * 2  # 2 layers × {q, v} × {A, B}
    vis, mask = _visual()
    lm(vis, mask, PROMPTS, ["green", "<ground>"])["lm_loss"].backward()
    assert all(p.grad is not None for n, p in lm.model.named_parameters() if p.requires_grad)
    gen = lm.generate(vis, mask, PROMPTS, max_new_tokens=3)  # generation through the peft wrapper
    assert len(gen["text"]) == 2
    with pytest.raises(ValueError, match="lora_target_modules"):
        LanguageModel(
            tiny_llm_config(path=str(saved_llm_dir), finetune="lora", lora_target_modules=["nope"]), vision_dim=16
        )


def test_frozen_and_errors(tiny_llm_config, word_tokenizer):
    lm = LanguageModel(tiny_llm_config(finetune="frozen"), vision_dim=16, tokenizer=word_tokenizer)
    assert not any(p.requires_grad for p in lm.model.parameters())
    assert all(p.requires_grad for p in lm.projector.parameters())
    vis, mask = _visual()
    with pytest.raises(ValueError, match="placeholders"):
        lm.build_inputs(vis, mask, [f"{TOKEN_3D} {TOKEN_3D}", "a"], None)
    small = LanguageModel(tiny_llm_config(max_length=6), vision_dim=16, tokenizer=word_tokenizer)
    with pytest.raises(ValueError, match="llm.max_length"):
        small.build_inputs(vis, mask, PROMPTS, None)
    with pytest.raises(ValueError, match="tokenizer must be given"):
        LanguageModel(tiny_llm_config(), vision_dim=16)


def test_special_tokens_added_and_embeddings_resized(tmp_path, tiny_llm_config):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from vl.llm import build_tiny_causal_lm

    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "</s>", "red", "chair", "question", ":", "answer"])}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    plain = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", unk_token="<unk>", eos_token="</s>")
    assert "<3d>" not in plain.get_vocab()
    build_tiny_causal_lm(tiny_llm_config(), plain).save_pretrained(str(tmp_path))
    plain.save_pretrained(str(tmp_path))
    lm = LanguageModel(tiny_llm_config(path=str(tmp_path)), vision_dim=16)
    assert lm.model.get_input_embeddings().num_embeddings == len(vocab) + 2 == len(lm.tokenizer)
    assert {lm.token_3d_id, lm.token_ground_id} == {len(vocab), len(vocab) + 1}
    vis, mask = _visual()
    out = lm(vis, mask, ["<3d> question : red chair answer :"] * 2, ["red", "<ground>"])
    assert torch.isfinite(out["lm_loss"]) and out["has_ground"].tolist() == [False, True]


def test_stop_tokens_include_generation_config_eos(tiny_llm_config, word_tokenizer):
    lm = LanguageModel(tiny_llm_config(), vision_dim=16, tokenizer=word_tokenizer)
    lm.base_model.generation_config.eos_token_id = [word_tokenizer.eos_token_id, 7]
    assert lm.stop_token_ids() == {word_tokenizer.eos_token_id, 7}
    assert LanguageModel._strip([5, 6, 7, 8, 2], {7}, 0) == [5, 6]
    assert LanguageModel._strip([0, 5, 0], {7}, 0) == [5]


def test_generation_never_emits_control_tokens(tiny_llm_config, word_tokenizer):
    lm = LanguageModel(tiny_llm_config(), vision_dim=16, tokenizer=word_tokenizer)
    ground, three_d = lm.token_ground_id, lm.token_3d_id

    def favour_control_tokens(_module, _inputs, logits):  # <ground>, then <3d>, top every distribution
        logits = logits.clone()
        logits[..., ground] = 1e4
        logits[..., three_d] = 9e3
        return logits

    lm.model.get_output_embeddings().register_forward_hook(favour_control_tokens)
    vis, mask = _visual()
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([[1, 2]])).logits[0, -1]
    assert int(logits.argmax()) == ground  # the unconstrained argmax is the control token
    ids = lm.generate(vis, mask, PROMPTS, max_new_tokens=4)["token_ids"]
    assert not torch.isin(ids, torch.tensor(sorted(lm.suppressed_token_ids()))).any()
    assert lm.suppressed_token_ids() >= {ground, three_d, word_tokenizer.pad_token_id}


def test_ground_position_has_no_lm_target(tiny_llm_config, word_tokenizer):
    """The token after <ground> (EOS) is not a target, so the <ground> state is free to be the grounding query."""
    lm = LanguageModel(tiny_llm_config(), vision_dim=16, tokenizer=word_tokenizer)
    vis, mask = _visual()
    inp = lm.build_inputs(vis, mask, PROMPTS, ["green", "<ground>"])
    lab1 = inp["labels"][1][inp["labels"][1] != -100].tolist()
    assert lab1 == [lm.token_ground_id]  # <ground> is predicted, the EOS after it is not
    lab0 = inp["labels"][0][inp["labels"][0] != -100].tolist()
    assert lab0[-1] == word_tokenizer.eos_token_id  # ordinary answers keep their EOS target
    out = lm(vis, mask, PROMPTS, ["green", "<ground>"])
    assert out["has_ground"].tolist() == [False, True] and out["ground_state"][1].abs().sum() > 0


def test_grounding_query_depends_on_the_description(tiny_llm_config, word_tokenizer):
    """prompt_mask marks exactly the prompt's words; the <ground> query carries their mean state."""
    lm = LanguageModel(tiny_llm_config(), vision_dim=16, tokenizer=word_tokenizer).eval()
    vis, mask = _visual()
    prompts = [
        f"{TOKEN_3D} find the object : the red chair answer:",
        f"{TOKEN_3D} find the object : the blue table answer:",
    ]
    inp = lm.build_inputs(vis, mask, prompts, ["<ground>", "<ground>"])
    n_words = [len(lm.processor.prompt_ids(p)) - 1 for p in prompts]  # without the <3d> placeholder
    assert inp["prompt_mask"].sum(1).tolist() == n_words
    assert (
        not (inp["prompt_mask"] & (inp["visual_index"] >= 0)).any()
        and not (inp["prompt_mask"] & (inp["labels"] != -100)).any()
    )
    with torch.no_grad():
        out = lm(vis, mask, prompts, ["<ground>", "<ground>"])
        hidden = out["hidden"]
        first = ((inp["input_ids"] == lm.token_ground_id) & (inp["labels"] != -100)).float().argmax(-1)
        pm = inp["prompt_mask"][..., None].float()
        expected = hidden[torch.arange(2), first] + (hidden * pm).sum(1) / pm.sum(1)
    torch.testing.assert_close(out["ground_state"], expected)
