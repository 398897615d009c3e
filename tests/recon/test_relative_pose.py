"""Patch-grid relative-pose module of the camera head (recon.camera_head.relative_pose): shapes, zero-init
identity, gradients, its auxiliary loss and the round trip through the VGGT-layout file."""

import pytest
import torch

from recon.config import (
    AggregatorConfig,
    CameraHeadConfig,
    DepthHeadConfig,
    EncoderConfig,
    ReconConfig,
    ReconLossConfig,
    RelativePoseConfig,
)
from recon.heads.relative_pose import RelativePoseModule, correlation_width, displacement_correlation
from recon.losses import ReconLoss, relative_pose_loss
from recon.model import ReconstructionModel
from recon.vggt_loader import RELATIVE_POSE_PREFIX, from_vggt_checkpoint, load_vggt_weights, save_vggt_state_dict

OVERRIDES = {
    "num_heads": 4,
    "camera_num_heads": 4,
    "depth_head_layers": [0, 1, 2, 3],
    "encoder_num_heads": 4,
    "frames_chunk_size": 4,
}


def _model(relative: bool, seed: int = 0, hidden: int = 32, correlation: bool = True) -> ReconstructionModel:
    torch.manual_seed(seed)
    enc = EncoderConfig(
        hidden_size=64, num_layers=4, num_heads=4, pretrain_image_size=112, intermediate_layers=[0, 1, 2, 3]
    )
    cfg = ReconConfig(
        aggregator=AggregatorConfig(depth=4, num_heads=4),
        camera_head=CameraHeadConfig(
            trunk_depth=2,
            num_heads=4,
            relative_pose=RelativePoseConfig(
                enabled=relative, channels=4, grid=4, hidden=hidden, correlation=correlation, center=True
            ),
        ),
        depth_head=DepthHeadConfig(
            intermediate_layers=[0, 1, 2, 3], features=32, out_channels=[16, 32, 64, 64], frames_chunk_size=4
        ),
    )
    return ReconstructionModel(enc, cfg)


def _gt(b: int, s: int, h: int, w: int) -> dict:
    torch.manual_seed(1)
    angles = torch.linspace(0, 0.6, s)
    rot = torch.zeros(b, s, 3, 3)
    rot[..., 0, 0] = rot[..., 2, 2] = torch.cos(angles)
    rot[..., 0, 2], rot[..., 2, 0] = torch.sin(angles), -torch.sin(angles)
    rot[..., 1, 1] = 1
    extr = torch.cat([rot, torch.randn(b, s, 3, 1) * 0.1], dim=-1)
    intr = torch.tensor([[50.0, 0, w / 2], [0, 50.0, h / 2], [0, 0, 1]]).expand(b, s, 3, 3)
    return {"extrinsics": extr, "intrinsics": intr, "depth": 1 + torch.rand(b, s, h, w)}


def test_module_shapes_and_grid_pooling():
    mod = RelativePoseModule(16, channels=4, grid=3, hidden=24)
    for grid in ((3, 3), (5, 7)):
        offset, pose = mod(torch.randn(2, 5, grid[0] * grid[1], 16), grid)
        assert offset.shape == (2, 5, 16) and pose.shape == (2, 5, 7)
    with pytest.raises(ValueError, match="do not match grid"):
        mod(torch.randn(1, 2, 10, 16), (3, 3))


@pytest.mark.parametrize("correlation", [False, True])
def test_module_input_width(correlation):
    mod = RelativePoseModule(16, channels=4, grid=3, hidden=24, correlation=correlation)
    assert mod.mlp[0].in_features == 2 * 4 * 9 + (correlation_width(3) if correlation else 0)
    assert mod(torch.randn(1, 2, 9, 16), (3, 3))[1].shape == (1, 2, 7)


def test_displacement_correlation_peaks_at_the_shift():
    torch.manual_seed(0)
    g = 6
    base = torch.randn(2, 8, g, g + 2)
    first, moved = base[..., 2:], base[..., :-2]  # moved(x + 2) = first(x): content moved 2 columns right
    corr = displacement_correlation(moved, first).view(2, 2 * g - 1, 2 * g - 1)
    peak = corr.flatten(1).argmax(dim=1)
    assert torch.equal(peak, torch.full((2,), (g - 1) * (2 * g - 1) + 2 + g - 1))
    torch.testing.assert_close(corr[:, g - 1, g + 1], torch.ones(2))  # cosine 1 wherever it overlaps
    self_corr = displacement_correlation(first, first).view(2, 2 * g - 1, 2 * g - 1)
    torch.testing.assert_close(self_corr[:, g - 1, g - 1], torch.ones(2))
    with pytest.raises(ValueError, match="square"):
        displacement_correlation(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4))


def test_offset_compares_each_frame_with_frame_zero():
    mod = RelativePoseModule(16, channels=4, grid=2, hidden=24)
    torch.nn.init.normal_(mod.to_token.weight)
    x = torch.randn(1, 3, 4, 16)
    offset, pose = mod(x, (2, 2))
    y = x.clone()
    y[:, 0] = torch.randn(4, 16)  # a different first frame changes every frame's output
    offset2, pose2 = mod(y, (2, 2))
    assert not torch.allclose(offset[:, 1:], offset2[:, 1:]) and not torch.allclose(pose[:, 1:], pose2[:, 1:])


def test_zero_init_leaves_camera_head_unchanged():
    off, on = _model(False).eval(), _model(True, seed=3).eval()
    missing, unexpected = on.load_state_dict(off.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith("camera_head.relative_pose.") for k in missing)
    images = torch.rand(2, 3, 3, 56, 56)
    with torch.no_grad():
        a, b = off(images), on(images)
    for pa, pb in zip(a["pose_enc_list"], b["pose_enc_list"]):
        torch.testing.assert_close(pa, pb)
    assert b["relative_pose_enc"].shape == (2, 3, 7) and "relative_pose_enc" not in a


def test_gradients_reach_the_module_through_both_losses():
    model = _model(True).train()
    images = torch.rand(1, 3, 3, 56, 56)
    gt = _gt(1, 3, 56, 56)
    out = model(images)
    aux = ReconLoss(ReconLossConfig(relative_pose_weight=1.0, camera_weight=0.0, depth_weight=0.0))(out, gt)
    aux["loss"].backward()
    rel = model.camera_head.relative_pose
    assert rel.mlp[0].weight.grad.abs().sum() > 0 and rel.reduce.weight.grad.abs().sum() > 0
    assert (
        model.aggregator.frame_blocks[-1].mlp.fc2.weight.grad.abs().sum() > 0
    )  # the aux loss trains the aggregator too
    model.zero_grad()
    cam = ReconLoss(ReconLossConfig(relative_pose_weight=0.0))(model(images), gt)
    cam["loss"].backward()
    assert rel.to_token.weight.grad.abs().sum() > 0  # the camera loss opens the zero-initialised projection


def test_relative_pose_loss_terms():
    gt = torch.randn(2, 4, 9)
    assert relative_pose_loss(gt[..., :7].clone(), gt).item() == 0.0
    pred = gt[..., :7] + 0.5
    assert relative_pose_loss(pred, gt).item() == pytest.approx(0.5)
    mask = torch.tensor([[True, False, False, False], [False] * 4])
    pred[0, 1:] += 10  # masked frames do not count
    assert relative_pose_loss(pred, gt, mask).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"\[B, S, 7\]"):
        relative_pose_loss(torch.zeros(2, 4, 9), gt)
    model_out = {
        "pose_enc_list": [torch.zeros(1, 3, 9)],
        "depth": torch.ones(1, 3, 8, 8),
        "depth_conf": torch.ones(1, 3, 8, 8),
    }
    with pytest.raises(ValueError, match="relative_pose.enabled"):
        ReconLoss(ReconLossConfig(relative_pose_weight=1.0))(model_out, _gt(1, 3, 8, 8))


def test_vggt_file_round_trip(tmp_path):
    model = _model(True).eval()
    with torch.no_grad():
        for p in model.camera_head.relative_pose.parameters():
            p.normal_(0, 0.1)  # a trained module: a non-zero offset
    path = save_vggt_state_dict(model, tmp_path / "model.pt")
    sd = torch.load(path, weights_only=True)
    assert any(k.startswith(RELATIVE_POSE_PREFIX) for k in sd)
    loaded = from_vggt_checkpoint(path, **OVERRIDES)
    assert loaded.cfg.camera_head.relative_pose == RelativePoseConfig(
        enabled=True, channels=4, grid=4, hidden=32, correlation=True, center=True
    )
    assert loaded.vggt_load_report.missing == [] and loaded.vggt_load_report.unexpected == []
    images = torch.rand(1, 3, 3, 56, 56)
    with torch.no_grad():
        a, b = model(images), loaded(images)
    torch.testing.assert_close(a["pose_enc"], b["pose_enc"])
    torch.testing.assert_close(a["relative_pose_enc"], b["relative_pose_enc"])
    # a model without the option refuses the keys by name (strict) or skips them with the report saying so
    plain = _model(False)
    with pytest.raises(ValueError, match="relative_pose.enabled: true"):
        load_vggt_weights(plain, sd, strict=True)
    report = load_vggt_weights(plain, sd, strict=False)
    assert (
        report.unexpected == []
        and report.missing == []
        and any(k.startswith(RELATIVE_POSE_PREFIX) for k in report.skipped)
    )


def test_option_off_keeps_the_vggt_layout():
    sd = _model(False).vggt_state_dict()
    assert not any(k.startswith(RELATIVE_POSE_PREFIX) for k in sd)
    assert from_vggt_checkpoint(sd, **OVERRIDES).camera_head.relative_pose is None


def test_loader_reads_the_options_and_refuses_a_bad_buffer():
    sd = _model(True, correlation=False).vggt_state_dict()
    cfg = from_vggt_checkpoint(sd, **OVERRIDES).cfg.camera_head.relative_pose
    assert cfg == RelativePoseConfig(enabled=True, channels=4, grid=4, hidden=32, correlation=False, center=True)
    sd[RELATIVE_POSE_PREFIX + "options"] = torch.tensor([1.0, 1.0])  # claims a correlation profile the weights lack
    with pytest.raises(ValueError, match="does not match 4 channels"):
        from_vggt_checkpoint(sd, **OVERRIDES)
