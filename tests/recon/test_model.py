"""Standalone ReconstructionModel at the tiny config: outputs, geometry consistency, training step."""

import pytest
import torch

from recon.config import AggregatorConfig, CameraHeadConfig, DepthHeadConfig, EncoderConfig, ReconConfig
from recon.geometry import pose_encoding_to_extri_intri
from recon.model import ReconstructionModel


def _tiny(kind="dinov2"):
    torch.manual_seed(0)
    enc = EncoderConfig(
        kind=kind, hidden_size=64, num_layers=4, num_heads=4, pretrain_image_size=112, intermediate_layers=[0, 1, 2, 3]
    )
    cfg = ReconConfig(
        aggregator=AggregatorConfig(depth=4, num_heads=4),
        camera_head=CameraHeadConfig(trunk_depth=2, num_heads=4),
        depth_head=DepthHeadConfig(
            intermediate_layers=[0, 1, 2, 3], features=32, out_channels=[16, 32, 64, 64], frames_chunk_size=4
        ),
    )
    return ReconstructionModel(enc, cfg)


@pytest.mark.parametrize("kind", ["dinov2", "conv"])
def test_tiny_model_outputs(kind):
    model = _tiny(kind).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 5, 3, 70, 98))
    assert out["pose_enc"].shape == (2, 5, 9) and len(out["pose_enc_list"]) == 4
    assert out["depth"].shape == out["depth_conf"].shape == (2, 5, 70, 98)
    assert out["extrinsic"].shape == (2, 5, 3, 4) and out["intrinsic"].shape == (2, 5, 3, 3)
    ext, intr = pose_encoding_to_extri_intri(out["pose_enc"], (70, 98))
    torch.testing.assert_close(out["extrinsic"], ext)
    torch.testing.assert_close(out["intrinsic"], intr)
    assert torch.equal(out["pose_enc"], out["pose_enc_list"][-1])


def test_training_step_reaches_every_parameter():
    model = _tiny().train()
    model.cfg.aggregator.gradient_checkpointing = True
    out = model(torch.rand(1, 3, 3, 42, 56))
    loss = out["depth"].log().mean() + out["depth_conf"].mean() + sum(p.abs().mean() for p in out["pose_enc_list"])
    loss.backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []
    assert not model.encoder.model.embeddings.mask_token.requires_grad


def test_config_validation_names_fields():
    with pytest.raises(ValueError, match="recon.depth_head.features"):
        DepthHeadConfig(features=12)
    with pytest.raises(ValueError, match="recon.depth_head.frames_chunk_size"):
        DepthHeadConfig(frames_chunk_size=-1)
    with pytest.raises(ValueError, match="recon.aggregator.rope_freq"):
        AggregatorConfig(rope_freq=-1.0)
    enc = EncoderConfig(hidden_size=32, num_layers=2, num_heads=4, intermediate_layers=[0])
    with pytest.raises(ValueError, match="recon.depth_head.intermediate_layers"):
        ReconstructionModel(enc, ReconConfig(aggregator=AggregatorConfig(depth=2, num_heads=4)))
