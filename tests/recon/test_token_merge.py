"""Token merging in the global blocks: plan, blockwise matching, merge/unmerge, exactness on duplicates, switch."""

import pytest
import torch
import torch.nn.functional as F

try:  # tests/recon is a rootdir-style test folder (no __init__.py); also works if it becomes a package
    from vggt_reference import make_vggt_state_dict
except ImportError:  # pragma: no cover
    from tests.recon.vggt_reference import make_vggt_state_dict

from recon.aggregator import Aggregator
from recon.config import AggregatorConfig
from recon.layers.block import Block
from recon.layers.rope import RotaryEmbedding2D, patch_positions
from recon.layers.token_merge import kept_patches, match, match_sources, merge_plan
from recon.vggt_loader import infer_configs

GRID = (4, 5)  # 20 patches per frame
SPECIAL = 3  # camera + 2 registers
N = SPECIAL + GRID[0] * GRID[1]


def _positions(frames: int) -> torch.Tensor:
    return patch_positions(*GRID, SPECIAL)[None].repeat(1, frames, 1)


@pytest.mark.parametrize("ratio, kept", [(0.0, 20), (0.5, 10), (0.8, 4), (0.99, 1)])
def test_kept_patches_are_evenly_spread_and_distinct(ratio, kept):
    idx = kept_patches(20, ratio)
    assert idx.numel() == kept and idx.unique().numel() == kept
    assert idx.min() >= 0 and idx.max() < 20 and bool((idx[1:] > idx[:-1]).all())
    if kept == 10:
        assert idx.tolist() == list(range(1, 20, 2))


def test_plan_keeps_frame_zero_and_special_tokens_and_merges_only_later_patches():
    frames = 4
    plan = merge_plan(frames, SPECIAL, 20, 0.75, positions=_positions(frames))
    dst = set(plan.dst_index.tolist())
    assert set(range(N)) <= dst  # every token of frame 0
    assert all(f * N + j in dst for f in range(frames) for j in range(SPECIAL))  # every camera/register token
    src = plan.src_index.tolist()
    assert len(src) == (frames - 1) * 15 and not dst & set(src)
    assert sorted(dst | set(src)) == list(range(frames * N))
    assert all(i >= N and i % N >= SPECIAL for i in src)  # only patches of frames >= 1
    absorb = plan.dst_index[plan.absorb]
    assert all(int(i) % N >= SPECIAL for i in absorb)  # special tokens never absorb a source
    assert plan.absorb.numel() == plan.dst_index.numel() - frames * SPECIAL
    # merged RoPE positions are the destinations' own positions
    assert torch.equal(plan.positions.positions, _positions(frames)[:, plan.dst_index])


def test_blockwise_matching_equals_brute_force_argmax(monkeypatch):
    torch.manual_seed(0)
    src, dst = torch.randn(2, 37, 8), torch.randn(2, 11, 8)
    reference = (F.normalize(src, dim=-1) @ F.normalize(dst, dim=-1).transpose(1, 2)).argmax(-1)
    rows_seen = []
    bmm = torch.bmm

    def recording_bmm(a, b):
        rows_seen.append(a.shape[1] * b.shape[2])
        return bmm(a, b)

    monkeypatch.setattr(torch, "bmm", recording_bmm)
    got = match_sources(src, dst, block_elements=4 * 11)
    assert torch.equal(got, reference)
    assert max(rows_seen) <= 4 * 11 and len(rows_seen) == 10  # ceil(37 / 4) blocks, never 37 × 11 at once
    assert torch.equal(match_sources(src, dst, block_elements=1), reference)  # one row at a time


def test_ratio_zero_merge_unmerge_is_identity():
    torch.manual_seed(0)
    x = torch.randn(2, 3 * N, 16)
    plan = merge_plan(3, SPECIAL, 20, 0.0)
    assert plan.src_index.numel() == 0
    m = match(plan, x)
    assert torch.equal(m.merge(x), x)
    assert torch.equal(m.unmerge(m.merge(x)), x)
    assert torch.equal(m.attention_bias(), torch.zeros(2, 1, 1, 3 * N))


def _duplicated_sequence(frames: int, plan, batch: int = 2, dim: int = 16) -> torch.Tensor:
    """Random distinct tokens, except that every source is a copy of frame 0's token at the same grid position."""
    x = torch.randn(batch, frames * N, dim)
    src = plan.src_index
    x[:, src] = x[:, src % N]
    return x


def test_unmerge_gives_every_source_its_destination_row():
    torch.manual_seed(0)
    plan = merge_plan(3, SPECIAL, 20, 0.5)
    x = _duplicated_sequence(3, plan)
    m = match(plan, x)
    assert torch.equal(plan.dst_index[m.assign], (plan.src_index % N).expand_as(m.assign))  # matched its copy
    sizes = m.sizes[0]
    assert sizes.sum() == 3 * N and sizes.max() > 1
    y = torch.randn(2, plan.dst_index.numel(), 5)
    full = m.unmerge(y)
    assert torch.equal(full[:, plan.dst_index], y)
    assert torch.equal(full[:, plan.src_index], full[:, plan.src_index % N])
    # merging exact duplicates averages equal rows: the merged sequence is the destinations themselves
    torch.testing.assert_close(m.merge(x), x[:, plan.dst_index], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(m.unmerge(m.merge(x)), x, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("rope", [True, False])
def test_merged_attention_on_duplicates_equals_full_attention(rope):
    """A source identical to its destination, at the same RoPE position: proportional attention over the merged
    keys weighs the group as its size, so the block's output equals the full block's (plain attention does not)."""
    torch.manual_seed(0)
    frames = 4
    positions = _positions(frames) if rope else None
    block = Block(16, 2, rope=RotaryEmbedding2D(100.0) if rope else None, init_value=1.0).eval()
    plan = merge_plan(frames, SPECIAL, 20, 0.8, positions=positions)
    x = _duplicated_sequence(frames, plan) * 3
    with torch.no_grad():
        full = block(x, positions)
        merged = block(x, positions, plan)
        plain = block(x, positions, merge_plan(frames, SPECIAL, 20, 0.8, positions=positions, proportional=False))
    torch.testing.assert_close(merged, full, rtol=1e-5, atol=1e-5)
    assert (plain - full).abs().max() > 1e-3


def test_aggregator_identical_frames_merged_equals_exact():
    """All frames equal (and both camera/register slots equal): every source duplicates frame 0's token at its
    position in every global block, so merged global attention reproduces the exact aggregator."""
    torch.manual_seed(0)
    exact = Aggregator(16, AggregatorConfig(depth=2, num_heads=2, num_register_tokens=2)).eval()
    with torch.no_grad():
        exact.camera_token.normal_()
        exact.register_token.normal_()
        exact.camera_token[:, 1] = exact.camera_token[:, 0]
        exact.register_token[:, 1] = exact.register_token[:, 0]
    merged = Aggregator(16, AggregatorConfig(depth=2, num_heads=2, num_register_tokens=2, global_merge_ratio=0.7))
    merged.load_state_dict(exact.state_dict())
    merged.eval()
    x = torch.randn(1, 1, 20, 16).expand(2, 5, 20, 16)
    with torch.no_grad():
        ref, _ = exact(x, GRID)
        out, _ = merged(x, GRID)
    for i in ref:
        torch.testing.assert_close(out[i], ref[i], rtol=1e-5, atol=1e-5)


def _pair(**merge_kw):
    torch.manual_seed(0)
    exact = Aggregator(32, AggregatorConfig(depth=3, num_heads=4), return_layers=[0, 1, 2]).eval()
    merged = Aggregator(32, AggregatorConfig(depth=3, num_heads=4, **merge_kw), return_layers=[0, 1, 2]).eval()
    merged.load_state_dict(exact.state_dict())
    return exact, merged


def _reference_forward(agg: Aggregator, x: torch.Tensor, grid) -> dict:
    """The exact aggregator written out block by block (no merge argument anywhere)."""
    from recon.aggregator import frame_slot_tokens
    from recon.layers.rope import RopePositions

    b, s, p, c = x.shape
    special = torch.cat([frame_slot_tokens(agg.camera_token, b, s), frame_slot_tokens(agg.register_token, b, s)], 1)
    t = torch.cat([special, x.reshape(b * s, p, c)], dim=1)
    n = t.shape[1]
    pos = patch_positions(*grid, agg.patch_start_idx)[None]
    pos_f, pos_g = RopePositions(pos), RopePositions(pos.repeat(1, s, 1))
    out = {}
    for i in range(agg.cfg.depth):
        t = agg.frame_blocks[i](t.reshape(b * s, n, c), pos_f)
        f = t.reshape(b, s, n, c)
        t = agg.global_blocks[i](t.reshape(b, s * n, c), pos_g)
        out[i] = torch.cat([f, t.reshape(b, s, n, c)], dim=-1)
    return out


def test_ratio_zero_is_bit_identical_and_merging_keeps_shapes():
    exact, merged = _pair(global_merge_ratio=0.6)
    x = torch.randn(2, 4, 35, 32)
    with torch.no_grad():
        ref = _reference_forward(exact, x, (5, 7))
        got, start = exact(x, (5, 7))
        approx, start_m = merged(x, (5, 7))
    assert start == start_m == 5
    for i in ref:
        assert torch.equal(got[i], ref[i])
        assert approx[i].shape == ref[i].shape == (2, 4, 40, 64)
    assert not torch.allclose(approx[2], ref[2], atol=1e-4)  # the switch does change the path


def test_merge_start_keeps_earlier_layers_exact_and_nothing_to_merge_is_exact():
    exact, merged = _pair(global_merge_ratio=0.6, global_merge_start=2)
    x = torch.randn(1, 3, 35, 32)
    with torch.no_grad():
        ref, _ = exact(x, (5, 7))
        got, _ = merged(x, (5, 7))
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
        assert not torch.allclose(got[2], ref[2], atol=1e-4)
        single = merged(x[:, :1], (5, 7))[0]  # one frame: no source, exact
        assert torch.equal(single[2], exact(x[:, :1], (5, 7))[0][2])
    _, tiny = _pair(global_merge_ratio=0.02)  # ⌊0.02 · 35⌋ = 0 patches merged
    with torch.no_grad():
        assert torch.equal(tiny(x, (5, 7))[0][2], ref[2])


def test_gradient_checkpointing_with_merging_same_outputs_and_grads():
    _, agg = _pair(global_merge_ratio=0.5)
    agg.train()
    x = torch.randn(1, 3, 35, 32)
    agg(x, (5, 7))[0][2].square().sum().backward()
    g = agg.global_blocks[1].attn.qkv.weight.grad.clone()
    assert g.abs().sum() > 0
    agg.zero_grad()
    agg.cfg.gradient_checkpointing = True
    agg(x, (5, 7))[0][2].square().sum().backward()
    torch.testing.assert_close(agg.global_blocks[1].attn.qkv.weight.grad, g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kw, key",
    [
        ({"global_merge_ratio": 1.0}, "recon.aggregator.global_merge_ratio"),
        ({"global_merge_ratio": -0.1}, "recon.aggregator.global_merge_ratio"),
        ({"global_merge_start": 3}, "recon.aggregator.global_merge_start"),
        ({"global_merge_start": -1}, "recon.aggregator.global_merge_start"),
    ],
)
def test_config_validation_names_the_key(kw, key):
    with pytest.raises(ValueError, match=key):
        AggregatorConfig(depth=3, **kw)


def test_plan_and_match_errors():
    with pytest.raises(ValueError, match=r"ratio must be in \[0, 1\)"):
        kept_patches(20, 1.0)
    with pytest.raises(ValueError, match="positions cover 23 tokens"):
        merge_plan(2, SPECIAL, 20, 0.5, positions=_positions(1))
    plan = merge_plan(2, SPECIAL, 20, 0.5)
    with pytest.raises(ValueError, match="the plan expects 46"):
        match(plan, torch.randn(1, 45, 8))


def test_vggt_loader_override_reaches_the_aggregator():
    _, cfg = infer_configs(make_vggt_state_dict(), num_heads=4, global_merge_ratio=0.8, global_merge_start=1)
    assert (cfg.aggregator.global_merge_ratio, cfg.aggregator.global_merge_start) == (0.8, 1)
    assert infer_configs(make_vggt_state_dict(), num_heads=4)[1].aggregator.global_merge_ratio == 0.0
