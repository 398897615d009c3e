"""Question-conditioned readout (vl/readout.py): attention, placement at the end of the prompt, localisation loss."""

import math

import pytest
import torch

from tests.vl.test_branch import _batch, _branch, _clip
from vl.config import GeoAuxConfig, ReadoutConfig, VLConfig
from vl.readout import QuestionReadout, localization_loss, tokens_in_boxes


def test_readout_matches_a_direct_computation():
    torch.manual_seed(0)
    mod = QuestionReadout(8, 2)
    q, qm = torch.randn(1, 3, 8), torch.tensor([[True, True, False]])
    v, vm = torch.randn(1, 4, 8), torch.tensor([[True, True, True, False]])
    out, att = mod(q, qm, v, vm)
    s = mod.norm_question(q[0, :2])
    for k in range(2):
        a = torch.softmax(mod.pool(s)[:, k], 0)
        query = mod.query((a[:, None] * s).sum(0))
        logits = mod.key(mod.norm_tokens(v[0, :3])) @ query / math.sqrt(8)
        p = torch.softmax(logits, 0)
        torch.testing.assert_close(att[0, k, :3], p, atol=1e-6, rtol=1e-5)
        assert att[0, k, 3] == 0
        summary = mod.summary(s.mean(0))
        torch.testing.assert_close(out[0, k], mod.out((p[:, None] * v[0, :3]).sum(0)) + summary, atol=1e-6, rtol=1e-5)


def test_tokens_in_boxes_and_loss_by_hand():
    pts = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [5.0, 5, 5]]])
    mask = torch.tensor([[True, True, True]])
    box = torch.tensor([[[1.0, 0, 0, 0.2, 0.2, 0.2], [5.0, 5, 5, 1.0, 1.0, 1.0]]])
    real = torch.tensor([[True, False]])  # the second box is padding
    assert tokens_in_boxes(pts, mask, box, real, None, 0.0).tolist() == [[False, True, False]]
    assert tokens_in_boxes(pts, mask, box, real, None, 1.0).tolist() == [[True, True, False]]
    wfm = torch.eye(4)[None].clone()
    wfm[0, 0, 3] = 1.0  # world = model + (1, 0, 0): the first token lands in the box
    assert tokens_in_boxes(pts, mask, box, real, wfm, 0.0).tolist() == [[True, False, False]]
    att = torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]])  # [1, K=2, M=3]
    targets = torch.tensor([[False, True, False]])
    assert float(localization_loss(att, targets)) == pytest.approx(-math.log((0.25 + 0.1) / 2))
    assert float(localization_loss(att, torch.zeros(1, 3, dtype=torch.bool))) == 0.0


def test_branch_with_readout_trains_and_places_tokens_last(word_tokenizer, tiny_llm_config):
    branch = _branch(word_tokenizer, tiny_llm_config, readout=ReadoutConfig(enabled=True, num_tokens=2))
    geometry, t_lang = _clip()
    t_lang.requires_grad_()
    batch = _batch()
    batch["object_boxes"] = [
        torch.tensor([[0.0, 0.0, 2.5, 4.0, 4.0, 3.0]]),
        torch.tensor([[0.0, 0.0, 2.0, 1.0, 1.0, 1.0]]),
    ]
    out = branch(t_lang, geometry, batch)
    assert torch.isfinite(out["localization"]) and float(out["localization"].detach()) > 0
    out["loss"].backward()
    assert branch.readout.query.weight.grad is not None and t_lang.grad is not None
    # the K readout tokens sit right before the answer
    tokens = branch.tokens_3d(t_lang.detach(), geometry)
    m = tokens["mask"].shape[1]
    inputs = branch.lm.build_inputs(
        tokens["features"], tokens["mask"], batch["prompts"], batch["answers"], num_extra=2, extra_at_end=True
    )
    for b in range(2):
        first_answer = (
            int((inputs["labels"][b] != -100).nonzero()[0]) - 1
        )  # the position predicting the first answer token
        assert inputs["visual_index"][b, first_answer - 1 : first_answer + 1].tolist() == [m, m + 1]
    assert len(branch.generate(t_lang.detach(), geometry, batch["prompts"])) == 2
    assert branch.ground(t_lang.detach(), geometry, batch["prompts"])["box"].shape == (2, 6)


def test_readout_changes_with_the_question(word_tokenizer, tiny_llm_config):
    branch = _branch(word_tokenizer, tiny_llm_config, readout=ReadoutConfig(enabled=True))
    geometry, t_lang = _clip()
    tokens = branch.tokens_3d(t_lang, geometry)
    _, att_a = branch._extra(tokens, ["<3d> question: what colour is the sofa ? answer:"] * 2)
    _, att_b = branch._extra(tokens, ["<3d> question: how many chairs are in the room ? answer:"] * 2)
    assert not torch.allclose(att_a, att_b)


def test_readout_config_errors():
    with pytest.raises(ValueError, match="vl.readout.num_tokens"):
        ReadoutConfig(num_tokens=0)
    with pytest.raises(ValueError, match="cannot both be on"):
        VLConfig(readout=ReadoutConfig(enabled=True), geo_aux=GeoAuxConfig(enabled=True, camera_weight=1.0))


def test_proposal_term_is_log_mass_inside_each_proposal():
    mod = QuestionReadout(8, 2)
    with torch.no_grad():
        mod.proposal_scale.fill_(2.0)
    att = torch.tensor([[[0.6, 0.3, 0.1, 0.0], [0.2, 0.3, 0.5, 0.0]]])  # mean over heads: 0.4, 0.3, 0.3, 0
    points = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0], [0.0, 0, 0]]])
    mask = torch.tensor([[True, True, True, False]])
    props = torch.tensor([[[0.5, 0, 0, 1.2, 0.2, 0.2], [3.0, 0, 0, 0.2, 0.2, 0.2], [9.0, 0, 0, 0.2, 0.2, 0.2]]])
    term = mod.proposal_term(att, points, mask, props, eps=1e-3)
    expected = 2.0 * torch.log(torch.tensor([0.7, 0.3, 0.0]) + 1e-3)
    torch.testing.assert_close(term[0], expected)
    wfm = torch.eye(4)[None].clone()
    wfm[0, 0, 3] = 6.0  # points move to x = 6, 7, 9: only the last proposal holds mass (0.3)
    torch.testing.assert_close(
        mod.proposal_term(att, points, mask, props, wfm, eps=1e-3)[0],
        2.0 * torch.log(torch.tensor([0.0, 0.0, 0.3]) + 1e-3),
    )


def test_branch_adds_the_readout_term_to_proposal_logits(word_tokenizer, tiny_llm_config):
    geometry, t_lang = _clip()
    batch = _batch()
    props = [torch.tensor([[0.0, 0.0, 2.0, 4.0, 4.0, 4.0], [9.0, 9.0, 9.0, 0.5, 0.5, 0.5]])] * 2
    outs = {}
    for flag in (True, False):
        branch = _branch(word_tokenizer, tiny_llm_config, readout=ReadoutConfig(enabled=True, score_proposals=flag))
        outs[flag] = branch.ground(t_lang, geometry, batch["prompts"], proposals=props)
    # the empty far proposal gets log(eps) from the readout: never chosen with the term on
    assert outs[True]["proposal_best"].tolist() == [0, 0]


def test_two_hop_readout_matches_a_direct_computation():
    torch.manual_seed(1)
    mod = QuestionReadout(8, 2, hops=2)
    with torch.no_grad():
        mod.distance_scale.fill_(0.5)
    q, qm = torch.randn(1, 3, 8), torch.tensor([[True, True, True]])
    v, vm = torch.randn(1, 4, 8), torch.tensor([[True, True, True, False]])
    pts = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [0.0, 2, 0], [9.0, 9, 9]]])
    out, att2 = mod(q, qm, v, vm, pts)
    assert out.shape == (1, 4, 8) and att2.shape == (1, 2, 4)
    one = out[:, :2]
    s = mod.norm_question(q[0])
    keys, summary = mod.norm_tokens(v[0, :3]), mod.summary(s.mean(0))
    beta = torch.nn.functional.softplus(torch.tensor(0.5))
    for k in range(2):
        a = torch.softmax(mod.pool(s)[:, k], 0)
        p = torch.softmax(mod.key(keys) @ mod.query((a[:, None] * s).sum(0)) / math.sqrt(8), 0)
        looked = (p[:, None] * v[0, :3]).sum(0)
        torch.testing.assert_close(one[0, k], mod.out(looked) + summary, atol=1e-6, rtol=1e-5)
        anchor = (p[:, None] * pts[0, :3]).sum(0)
        a2 = torch.softmax(mod.pool2(s)[:, k], 0)
        q2 = mod.query2((a2[:, None] * s).sum(0)) + mod.relay(looked)
        logits = mod.key2(keys) @ q2 / math.sqrt(8) - beta * (pts[0, :3] - anchor).norm(dim=-1)
        p2 = torch.softmax(logits, 0)
        torch.testing.assert_close(att2[0, k, :3], p2, atol=1e-6, rtol=1e-5)
        assert att2[0, k, 3] == 0
        torch.testing.assert_close(
            out[0, 2 + k], mod.out2((p2[:, None] * v[0, :3]).sum(0)) + summary, atol=1e-6, rtol=1e-5
        )
    with pytest.raises(ValueError, match="points"):
        mod(q, qm, v, vm)
    with pytest.raises(ValueError, match="vl.readout.hops"):
        ReadoutConfig(hops=3)


def test_branch_with_two_hops_trains_and_answers(word_tokenizer, tiny_llm_config):
    branch = _branch(word_tokenizer, tiny_llm_config, readout=ReadoutConfig(enabled=True, num_tokens=2, hops=2))
    geometry, t_lang = _clip()
    batch = _batch()
    batch["object_boxes"] = [
        torch.tensor([[0.0, 0.0, 2.5, 4.0, 4.0, 3.0]]),
        torch.tensor([[0.0, 0.0, 2.0, 1.0, 1.0, 1.0]]),
    ]
    out = branch(t_lang, geometry, batch)
    out["loss"].backward()
    assert branch.readout.relay.weight.grad is not None and branch.readout.distance_scale.grad is not None
    extra, attention = branch._extra(branch.tokens_3d(t_lang.detach(), geometry), batch["prompts"])
    assert extra.shape[1] == 4 and attention.shape[1] == 2
    assert len(branch.generate(t_lang.detach(), geometry, batch["prompts"])) == 2
