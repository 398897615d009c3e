"""VGGT checkpoint loading: hand-built layout, functional-reference parity, round trip, errors."""

import pytest
import torch

try:  # tests/recon is a rootdir-style test folder (no __init__.py); also works if it becomes a package
    from vggt_reference import make_vggt_state_dict, vggt_forward
except ImportError:  # pragma: no cover
    from tests.recon.vggt_reference import make_vggt_state_dict, vggt_forward

from recon import from_vggt_checkpoint
from recon.vggt_loader import infer_configs, load_state_dict_file, save_vggt_state_dict

OVR = dict(num_heads=4, camera_num_heads=4, depth_head_layers=[0, 1, 1, 2], encoder_num_heads=4, frames_chunk_size=2)


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.fixture(scope="module")
def sd():
    return make_vggt_state_dict()


def test_hand_built_layout_loads_with_no_missing_keys(sd):
    model = from_vggt_checkpoint(sd, **OVR)
    rep = model.vggt_load_report
    assert rep.missing == [] and rep.unexpected == []
    assert sorted(rep.skipped) == ["point_head.norm.weight", "track_head.feature_extractor.norm.weight"]


def test_sizes_inferred_from_weights(sd):
    enc, cfg = infer_configs(sd, **OVR)
    assert (
        enc.kind,
        enc.hidden_size,
        enc.num_layers,
        enc.num_register_tokens,
        enc.pretrain_image_size,
        enc.patch_size,
    ) == ("dinov2", 32, 2, 4, 56, 14)
    assert (cfg.aggregator.depth, cfg.aggregator.num_register_tokens, cfg.aggregator.qk_norm) == (3, 4, True)
    assert (cfg.camera_head.trunk_depth, cfg.depth_head.features, cfg.depth_head.out_channels) == (
        1,
        16,
        [8, 16, 32, 32],
    )
    enc1b, cfg1b = infer_configs(sd)
    assert (
        cfg1b.aggregator.num_heads == 16
        and cfg1b.camera_head.iterations == 4
        and cfg1b.depth_head.intermediate_layers == [4, 11, 17, 23]
    )
    with pytest.raises(ValueError, match="unknown overrides"):
        infer_configs(sd, heads=3)


@pytest.mark.parametrize("conv_patch, hw, batch", [(False, (70, 98), 1), (False, (56, 56), 2), (True, (42, 70), 2)])
def test_parity_with_functional_reference(conv_patch, hw, batch):
    sdict = make_vggt_state_dict(conv_patch=conv_patch, seed=3)
    model = from_vggt_checkpoint(sdict, **OVR)
    torch.manual_seed(1)
    images = torch.rand(batch, 3, 3, *hw)
    with torch.no_grad():
        ours = model(images)
        ref = vggt_forward(images, sdict)
    for key in ("pose_enc", "depth", "depth_conf"):
        assert _rel(ours[key], ref[key]) <= 1e-4, key
    for a, b in zip(ours["pose_enc_list"], ref["pose_enc_list"], strict=True):
        assert _rel(a, b) <= 1e-4
    assert ours["extrinsic"].shape == (batch, 3, 3, 4) and ours["intrinsic"].shape == (batch, 3, 3, 3)


def test_parity_check_is_sensitive(sd):
    """A model that breaks one documented fact (no RoPE) is caught by the reference comparison."""
    images = torch.rand(1, 2, 3, 70, 98)
    model = from_vggt_checkpoint(sd, **{**OVR, "rope_freq": 0.0})
    with torch.no_grad():
        assert _rel(model(images)["depth"], vggt_forward(images, sd)["depth"]) > 1e-3


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_round_trip_vggt_layout(tmp_path, sd, suffix):
    model = from_vggt_checkpoint(sd, **OVR)
    path = save_vggt_state_dict(model, tmp_path / f"model{suffix}")
    written = load_state_dict_file(path)
    expected = {k: v for k, v in sd.items() if not k.startswith(("point_head.", "track_head."))}
    assert sorted(written) == sorted(expected)
    for k, v in expected.items():
        assert torch.equal(written[k], v), k
    again = from_vggt_checkpoint(path, **OVR)
    images = torch.rand(1, 2, 3, 42, 56)
    with torch.no_grad():
        a, b = model(images), again(images)
    for key in ("pose_enc", "depth", "depth_conf"):
        assert torch.equal(a[key], b[key])


def test_shape_mismatch_names_key_and_shapes(sd):
    bad = dict(sd)
    bad["depth_head.projects.0.weight"] = torch.zeros(8, 64, 1, 2)
    with pytest.raises(ValueError, match=r"depth_head\.projects\.0\.weight.*\(8, 64, 1, 2\).*\(8, 64, 1, 1\)"):
        from_vggt_checkpoint(bad, **OVR)


def test_missing_and_unexpected_keys_by_name(sd, caplog):
    bad = {k: v for k, v in sd.items() if k != "aggregator.frame_blocks.1.ls2.gamma"}
    bad["aggregator.extra_thing"] = torch.zeros(1)
    with pytest.raises(ValueError, match="aggregator.frame_blocks.1.ls2.gamma"):
        from_vggt_checkpoint(bad, **OVR)
    model = from_vggt_checkpoint(bad, strict=False, **OVR)
    assert model.vggt_load_report.missing == ["aggregator.frame_blocks.1.ls2.gamma"]
    assert model.vggt_load_report.unexpected == ["aggregator.extra_thing"]
    assert "aggregator.extra_thing" in caplog.text


def test_bad_file_messages(tmp_path):
    with pytest.raises(ValueError, match="file not found"):
        load_state_dict_file(tmp_path / "nope.pt")
    torch.save({"aggregator.camera_token": torch.zeros(1, 2, 1, 8)}, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="aggregator.register_token"):
        from_vggt_checkpoint(tmp_path / "partial.pt")


def test_paper_scale_layout_on_meta_device():
    """The default (VGGT-1B) config writes the official key layout and shapes, and infers back to itself."""
    from recon.config import EncoderConfig, ReconConfig
    from recon.model import ReconstructionModel
    from recon.vggt_loader import to_vggt_state_dict

    with torch.device("meta"):
        model = ReconstructionModel(EncoderConfig(), ReconConfig())
    sd = to_vggt_state_dict(model)
    shapes = {
        "aggregator.patch_embed.pos_embed": (1, 1370, 1024),
        "aggregator.patch_embed.register_tokens": (1, 4, 1024),
        "aggregator.patch_embed.mask_token": (1, 1024),
        "aggregator.patch_embed.blocks.23.attn.qkv.weight": (3072, 1024),
        "aggregator.patch_embed.blocks.23.ls2.gamma": (1024,),
        "aggregator.camera_token": (1, 2, 1, 1024),
        "aggregator.register_token": (1, 2, 4, 1024),
        "aggregator.global_blocks.23.attn.q_norm.weight": (64,),
        "camera_head.trunk.3.mlp.fc1.weight": (8192, 2048),
        "camera_head.poseLN_modulation.1.weight": (6144, 2048),
        "camera_head.pose_branch.fc2.weight": (9, 1024),
        "depth_head.projects.3.weight": (1024, 2048, 1, 1),
        "depth_head.resize_layers.0.weight": (256, 256, 4, 4),
        "depth_head.scratch.layer4_rn.weight": (256, 1024, 3, 3),
        "depth_head.scratch.output_conv2.2.weight": (2, 32, 1, 1),
    }
    for key, shape in shapes.items():
        assert tuple(sd[key].shape) == shape, key
    assert "depth_head.scratch.refinenet4.resConfUnit1.conv1.weight" not in sd
    assert 1.1e9 < sum(v.numel() for v in sd.values()) < 1.2e9
    enc, cfg = infer_configs(sd)
    assert enc == EncoderConfig() and cfg == ReconConfig()


def test_heads_run_in_fp32_under_autocast(sd):
    model = from_vggt_checkpoint(sd, **OVR)
    images = torch.rand(1, 2, 3, 42, 56)
    with torch.no_grad():
        ref = model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(images)
    for key in ("pose_enc", "depth", "depth_conf"):
        assert low[key].dtype == torch.float32
    assert _rel(low["depth"].log(), ref["depth"].log()) < 0.2


def test_loads_into_parts_of_a_larger_model(sd):
    """The same loader initialises a bigger model's shared encoder + branch, wherever they sit."""
    from recon.vggt_loader import load_vggt_weights

    source = from_vggt_checkpoint(sd, **OVR)
    host = torch.nn.Module()
    host.shared = from_vggt_checkpoint(make_vggt_state_dict(seed=9), **OVR).encoder
    host.recon = torch.nn.ModuleDict(
        {
            k: getattr(from_vggt_checkpoint(make_vggt_state_dict(seed=9), **OVR), k)
            for k in ("aggregator", "camera_head", "depth_head")
        }
    )
    parts = {"encoder": host.shared, **host.recon}
    report = load_vggt_weights(None, sd, parts=parts)
    assert report.missing == [] and report.unexpected == []
    for name, module in parts.items():
        for k, v in module.state_dict().items():
            assert torch.equal(v, getattr(source, name).state_dict()[k]), f"{name}.{k}"
    with pytest.raises(ValueError, match="parts"):
        load_vggt_weights(host, sd)
