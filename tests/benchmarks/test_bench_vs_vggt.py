"""bench_vs_vggt's parts that run without the official VGGT code (never available in CI): argument errors, the
benchmark config and its official constructor arguments, weight spreading, the comparisons and the summaries."""

import math
import sys

import pytest
import torch

from tests.helpers import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/bench_vs_vggt.py")


@pytest.fixture(scope="module")
def vo(bench):
    return sys.modules["_vggt_official"]


def test_missing_official_root_is_a_clear_error(bench, capsys):
    assert bench.main([]) == 2
    err = capsys.readouterr().err
    assert "--official-root is required" in err and "vggt/models/aggregator.py" in err


def test_official_root_without_the_package(bench, tmp_path, capsys):
    assert bench.main(["--official-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "no vggt/models/aggregator.py" in err


def test_official_root_whose_package_does_not_import(vo, tmp_path, monkeypatch):
    (tmp_path / "vggt" / "models").mkdir(parents=True)
    (tmp_path / "vggt" / "models" / "aggregator.py").write_text("raise ImportError('broken on purpose')\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        with pytest.raises(
            vo.OfficialImportError, match="importing the official vggt modules failed.*broken on purpose"
        ):
            vo.import_official(tmp_path)
    finally:
        for name in [m for m in sys.modules if m == "vggt" or m.startswith("vggt.")]:
            del sys.modules[name]


def test_image_size_must_be_a_patch_multiple(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--official-root", "x", "--image-size", "220"])


def test_default_config(vo, bench):
    enc, cfg = vo.bench_configs()
    assert (enc.kind, enc.hidden_size, enc.patch_size) == ("conv", 256, 14)
    assert (cfg.aggregator.depth, cfg.aggregator.num_heads) == (8, 4)
    assert (cfg.camera_head.trunk_depth, cfg.camera_head.num_heads, cfg.camera_head.iterations) == (4, 8, 4)
    dh = cfg.depth_head
    assert (dh.intermediate_layers, dh.features, dh.out_channels) == ([1, 3, 5, 7], 64, [64, 128, 256, 256])
    assert cfg.depth_head.frames_chunk_size == 8 and not cfg.camera_head.relative_pose.enabled
    assert vo.bench_configs(64, 2)[1].depth_head.intermediate_layers == [0, 1, 1, 1]
    summary = bench.config_summary(bench.parse_args(["--official-root", "x"]))
    assert summary["heads"] == 4 and summary["dpt_layers"] == [1, 3, 5, 7]
    with pytest.raises(ValueError, match="divisible by heads"):
        vo.bench_configs(dim=96, heads=5)


def test_official_kwargs_follow_our_config(vo):
    enc, cfg = vo.bench_configs(128, 4, heads=2)
    kw = vo.official_kwargs(enc, cfg, 112)
    agg = kw["aggregator"]
    assert agg["patch_embed"] == "conv" and (agg["embed_dim"], agg["depth"], agg["num_heads"]) == (128, 4, 2)
    assert (agg["img_size"], agg["patch_size"], agg["num_register_tokens"]) == (112, 14, 4)
    assert (agg["qk_norm"], agg["rope_freq"], agg["init_values"]) == (True, 100.0, 0.01)
    assert kw["camera_head"] == {"dim_in": 256, "trunk_depth": 4, "num_heads": 4, "mlp_ratio": 4.0}
    dpt = kw["depth_head"]
    assert (dpt["dim_in"], dpt["output_dim"], dpt["activation"], dpt["conf_activation"]) == (256, 2, "exp", "expp1")
    assert dpt["intermediate_layer_idx"] == [0, 1, 2, 3] and dpt["out_channels"] == [32, 64, 128, 128]
    assert kw["forward"] == {"num_iterations": 4, "frames_chunk_size": 8}


def test_spread_weights_moves_small_parameters_only(vo):
    from recon.model import ReconstructionModel

    enc, cfg = vo.bench_configs(64, 2)
    model = ReconstructionModel(enc, cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    vo.spread_weights(model, seed=0)
    after = model.state_dict()
    gamma = "aggregator.frame_blocks.0.ls1.gamma"
    assert torch.allclose(before[gamma], torch.full_like(before[gamma], 0.01))
    assert after[gamma].std() > 0.05  # LayerScale no longer ~0.01
    assert (after["aggregator.camera_token"] - before["aggregator.camera_token"]).abs().max() > 0.05
    assert not torch.equal(after["camera_head.empty_pose_tokens"], before["camera_head.empty_pose_tokens"])
    w = "aggregator.frame_blocks.0.attn.qkv.weight"
    assert torch.equal(after[w], before[w])
    assert set(vo.branch_layout(model.vggt_state_dict())) == set(model.vggt_state_dict())
    with pytest.raises(ValueError, match="outside"):
        vo.branch_layout({"point_head.x": torch.zeros(1)})


def test_max_rel_errors_and_parity_check(vo, bench, capsys):
    ours = {
        "pose_enc": torch.ones(1, 2, 9),
        "depth": torch.full((1, 2, 3, 3), 2.0),
        "depth_conf": torch.ones(1, 2, 3, 3),
    }
    official = {k: v.clone() for k, v in ours.items()}
    official["depth"] = official["depth"][..., None]  # official depth is [B, S, H, W, 1]
    official["pose_enc"][0, 1, 4] = 1.5
    err = vo.max_rel_errors(ours, official)
    assert err["depth"] == 0.0 and err["depth_conf"] == 0.0 and err["pose_enc"] == pytest.approx(0.5 / 1.5)

    class Fixed(torch.nn.Module):
        def __init__(self, out):
            super().__init__()
            self.out = out

        def forward(self, images):
            return self.out

    assert bench.check_parity(Fixed(ours), Fixed(ours), None, 1e-4)["pose_enc"] == 0.0
    with pytest.raises(SystemExit, match="pose_enc"):
        bench.check_parity(Fixed(ours), Fixed(official), None, 1e-4)
    assert "max relative error" in capsys.readouterr().out
    bad = dict(official, depth=torch.zeros(1, 2, 4, 4, 1))
    with pytest.raises(ValueError, match="depth"):
        vo.max_rel_errors(ours, bad)


def test_interleaved_order_alternates(bench):
    order = []
    fns = {"ours": lambda: order.append("o"), "official": lambda: order.append("f")}
    wall, cpu = bench.interleaved_times(fns, warmup=1, pairs=4)
    assert order == ["o", "f"] + ["o", "f", "f", "o", "o", "f", "f", "o"]
    for times in (wall, cpu):
        assert [len(t) for t in times.values()] == [4, 4] and all(t >= 0 for t in times["ours"])


def test_ratio_summary(bench):
    s = bench.ratio_summary([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert s["ratios"] == [0.5, 1.0, 1.5]
    assert (s["ratio_median"], s["ratio_min"], s["ratio_max"], s["ratio_of_medians"]) == (1.0, 0.5, 1.5, 1.0)
    assert s["ratio_q1"] <= s["ratio_median"] <= s["ratio_q3"]


def test_memory_table_fit_and_checks(bench):
    rows = [{"side": "ours", "frames": s, "peak_mib": 10.0 + 2.0 * s} for s in (8, 16, 32)]
    rows += [{"side": "official", "frames": s, "peak_mib": 5.0 + 3.0 * s + 0.01 * s * s} for s in (8, 16, 32)]
    table = bench.memory_table(rows)
    assert [r["frames"] for r in table] == [8, 16, 32]
    assert table[0]["ours_marginal_mib_per_frame"] is None
    assert table[2]["ours_marginal_mib_per_frame"] == pytest.approx(2.0)
    assert table[1]["ours_mib_per_frame"] == pytest.approx(42.0 / 16)
    checks = bench.memory_checks(table, at=32)
    assert checks["ours_le_official_at_32"]["pass"] is True  # 74 vs 111.24
    fit = checks["ours_linear_fit"]
    assert fit["slope_mib_per_frame"] == pytest.approx(2.0) and fit["intercept_mib"] == pytest.approx(10.0)
    assert fit["r2"] == pytest.approx(1.0) and fit["max_residual_fraction"] == pytest.approx(0.0, abs=1e-12)
    assert checks["official_linear_fit"]["r2"] < 1.0
    assert bench.linear_fit([8], [1.0]) == {}


def test_markdown_renders_both_modes(bench):
    meta = {"cpu": "cpu", "torch_threads_used": 2, "torch": "x", "config": bench.config_summary(bench.parse_args([]))}
    timing = {
        "mode": "timing",
        "labels": ["ours", "official"],
        "frames": 8,
        "max_rel_error": {"pose_enc": 0.0},
        "ours_ms_median": 90.0,
        "official_ms_median": 100.0,
        **bench.ratio_summary([0.09, 0.08], [0.1, 0.1]),
        "load_1min_before": 1.0,
        "load_1min_after": 2.0,
    }
    text = bench.markdown(timing, meta)
    assert "| wall clock | 90.0 | 100.0 | 0.850 |" in text and "1.00 → 2.00" in text
    timing["cpu_time"] = {"ours_ms_median": 1.0, "official_ms_median": 2.0, **bench.ratio_summary([1.0], [2.0])}
    assert "| process CPU time | 1.0 | 2.0 | 0.500 |" in bench.markdown(timing, meta)
    rows = [{"side": side, "frames": s, "peak_mib": float(s)} for side in ("ours", "official") for s in (8, 16)]
    table = bench.memory_table(rows)
    memory = {"mode": "memory", "table": table, "checks": bench.memory_checks(table)}
    text = bench.markdown(memory, meta)
    assert "| 16 | 16.0 | 16.0 | 1.000 |" in text and "R² 1.0000" in text
    assert all(math.isfinite(r["ratio"]) for r in table)
