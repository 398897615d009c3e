"""The grounding query's description path: llm.embed_scale and vl.grounding.query = 'attention'."""

import math

import pytest
import torch

from vl.branch import VLBranch
from vl.config import GroundingConfig, VLConfig
from vl.llm import LanguageModel
from vl.prompts import render_prompts
from vl.query_pool import DescriptionAttentionPool
from vl.tokenizer import TOKEN_3D

PROMPTS = [
    f"{TOKEN_3D} find the object : the red chair answer:",
    f"{TOKEN_3D} find the object : the blue table answer:",
]


def _visual(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 5, 16, generator=g), torch.tensor([[True] * 5, [True, True, True, False, False]])


def test_embed_scale_multiplies_text_embeddings_in_training_and_generation(tiny_llm_config, word_tokenizer):
    torch.manual_seed(0)
    lm = LanguageModel(tiny_llm_config(embed_scale=True), vision_dim=16, tokenizer=word_tokenizer).eval()
    ids = torch.tensor([[3, 4, 5]])
    torch.testing.assert_close(lm.embed_tokens(ids), lm.model.get_input_embeddings()(ids) * math.sqrt(32))
    vis, mask = _visual()
    inp = lm.build_inputs(vis, mask, PROMPTS, ["<ground>", "<ground>"])
    emb = lm.embed(vis, inp)
    text = inp["visual_index"] < 0
    torch.testing.assert_close(emb[text], lm.model.get_input_embeddings()(inp["input_ids"])[text] * math.sqrt(32))
    # generation embeds its prompt and every generated token the same way: its first two greedy tokens
    # are the argmax of the teacher-forced logits on those tokens
    with torch.no_grad():
        for p in lm.model.parameters():
            p.mul_(4.0)
        gen = lm.generate(vis[:1], mask[:1], PROMPTS[:1], max_new_tokens=2)["token_ids"][0].tolist()
        answer = word_tokenizer.decode(gen[:1])
        out = lm(vis[:1], mask[:1], PROMPTS[:1], [answer])
    assert out["answer_logits"][:2].argmax(-1).tolist()[: len(gen)] == gen[: min(2, len(gen))]
    off = LanguageModel(tiny_llm_config(), vision_dim=16, tokenizer=word_tokenizer)
    assert off.embed_scale == 1.0


def test_attention_pool_matches_a_hand_computation():
    torch.manual_seed(0)
    pool = DescriptionAttentionPool(8)
    states, embeds = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    mask = torch.tensor([[True, False, True, True], [False, False, False, False]])
    out = pool(states, embeds, mask)
    u = pool.value(torch.cat([pool.norm_state(states[0]), pool.norm_embed(embeds[0])], -1))
    score = pool.score(torch.tanh(pool.attn(u))).squeeze(-1)
    w = torch.softmax(score[mask[0]], 0)
    torch.testing.assert_close(out[0], (w[:, None] * u[mask[0]]).sum(0))
    assert out[1].abs().sum() == 0  # no text token → zeros


def test_attention_query_is_the_ground_state_plus_the_pooled_words(tiny_llm_config, word_tokenizer):
    torch.manual_seed(0)
    lm = LanguageModel(tiny_llm_config(), vision_dim=16, tokenizer=word_tokenizer, ground_query="attention").eval()
    vis, mask = _visual()
    with torch.no_grad():
        out = lm(vis, mask, PROMPTS, ["<ground>", "<ground>"])
        inp = out["inputs"]
        first = ((inp["input_ids"] == lm.token_ground_id) & (inp["labels"] != -100)).float().argmax(-1)
        expected = out["hidden"][torch.arange(2), first] + lm.query_pool(
            out["hidden"], lm.embed(vis, inp), inp["prompt_mask"]
        )
    torch.testing.assert_close(out["ground_state"], expected)
    assert not any(
        k.startswith("query_pool") for k in LanguageModel(tiny_llm_config(), 16, tokenizer=word_tokenizer).state_dict()
    )
    with pytest.raises(ValueError, match="vl.grounding.query"):
        LanguageModel(tiny_llm_config(), 16, tokenizer=word_tokenizer, ground_query="mean")
    with pytest.raises(ValueError, match="vl.grounding.query"):
        GroundingConfig(query="mean")


def _grounding_setup():
    b, s, h, w, c = 4, 2, 28, 28, 32
    depth = torch.full((b, s, h, w), 2.0)
    ext = torch.eye(3, 4).expand(b, s, 3, 4).clone()
    k = torch.tensor([[20.0, 0, w / 2], [0, 20.0, h / 2], [0, 0, 1]]).expand(b, s, 3, 3).clone()
    g = torch.Generator().manual_seed(0)
    t_lang = torch.randn(1, s, 4, c, generator=g).expand(b, s, 4, c).clone()  # one clip, four queries
    props = torch.tensor(
        [
            [-0.5, -0.5, 2.0, 1.0, 1.0, 1.0],
            [0.5, -0.5, 2.0, 1.0, 1.0, 1.0],
            [-0.5, 0.5, 2.0, 1.0, 1.0, 1.0],
            [0.5, 0.5, 2.0, 1.0, 1.0, 1.0],
        ]
    )
    words = ["red chair", "blue table", "green sofa", "red bed"]
    prompts = render_prompts(["ground"] * b, descriptions=[f"the {x}" for x in words])
    batch = {
        "prompts": prompts,
        "answers": ["<ground>"] * b,
        "proposals": [props] * b,
        "proposal_positives": [torch.arange(4) == i for i in range(b)],
    }
    return t_lang, {"depth": depth, "extrinsic": ext, "intrinsic": k}, batch


def test_grounding_query_learns_to_depend_on_the_description(word_tokenizer, tiny_llm_config):
    """Four descriptions of one clip, each naming a different proposal: the query must separate them."""
    torch.manual_seed(0)
    cfg = VLConfig(voxel_size=0.25, max_3d_tokens=64, grounding=GroundingConfig(mode="both", query="attention"))
    branch = VLBranch(cfg, tiny_llm_config(embed_scale=True), 32, 14, word_tokenizer)
    t_lang, geometry, batch = _grounding_setup()
    opt = torch.optim.Adam(branch.parameters(), lr=3e-3)
    batch["target_boxes"] = [p[pos] for p, pos in zip(batch["proposals"], batch["proposal_positives"])]
    for _ in range(60):
        loss = branch(t_lang, geometry, batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    res = branch.ground(t_lang, geometry, batch["prompts"], batch["proposals"])
    assert res["proposal_best"].tolist() == [0, 1, 2, 3]
    with torch.no_grad():
        q = torch.nn.functional.normalize(
            branch.grounding.query_proj(branch(t_lang, geometry, batch)["ground_state"]), dim=-1
        )
    assert (q @ q.T - torch.eye(4)).max() < 0.9
