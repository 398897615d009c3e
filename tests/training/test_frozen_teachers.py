"""Stage-1 teachers load from local files in the real formats and stay frozen."""

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from recon.config import AggregatorConfig, CameraHeadConfig, DepthHeadConfig, EncoderConfig, ReconConfig
from recon.model import ReconstructionModel
from vidllm.errors import CheckpointError
from vidllm.training.frozen_teachers import load_geometry_teacher, load_semantic_teacher

TINY_ENC = EncoderConfig(hidden_size=32, num_layers=2, num_heads=2, pretrain_image_size=56, intermediate_layers=[0, 1])
TINY_RECON = ReconConfig(
    aggregator=AggregatorConfig(depth=2, num_heads=2),
    camera_head=CameraHeadConfig(trunk_depth=1, num_heads=2),
    depth_head=DepthHeadConfig(intermediate_layers=[0, 1, 1, 1], features=8, out_channels=[8, 8, 8, 8]),
)


def test_geometry_teacher_from_vggt_checkpoint_matches_source_encoder(tmp_path):
    torch.manual_seed(0)
    branch = ReconstructionModel(TINY_ENC, TINY_RECON).eval()
    torch.save(branch.vggt_state_dict(), tmp_path / "model.pt")
    teacher = load_geometry_teacher(tmp_path / "model.pt", encoder_num_heads=2)
    images = torch.rand(1, 2, 3, 42, 56)
    tokens = teacher(images)
    assert tokens.shape == (2, 12, 32)
    torch.testing.assert_close(tokens, branch.encoder(images).patch_tokens)
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training and not teacher.encoder.training


def test_geometry_teacher_rejects_non_vggt_file(tmp_path):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a VGGT checkpoint"):
        load_geometry_teacher(tmp_path / "other.pt")


def test_semantic_teacher_from_local_clip_directory(tmp_path):
    cfg = CLIPVisionConfig(
        hidden_size=24, intermediate_size=48, num_hidden_layers=3, num_attention_heads=2, image_size=28, patch_size=7
    )
    CLIPVisionModel(cfg).save_pretrained(tmp_path / "clip")
    teacher = load_semantic_teacher(tmp_path / "clip")
    tokens, grid = teacher(torch.rand(2, 3, 3, 42, 56))
    assert teacher.input_size(42, 56) == (28, 35) and grid == (4, 5)
    assert tokens.shape == (6, 20, 24)
    assert not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(CheckpointError, match="no config.json"):
        load_semantic_teacher(tmp_path / "missing")


def test_geometry_teacher_reads_head_count_from_meta_json(tmp_path):
    import json

    torch.manual_seed(0)
    branch = ReconstructionModel(TINY_ENC, TINY_RECON).eval()
    torch.save(branch.vggt_state_dict(), tmp_path / "model.pt")
    (tmp_path / "meta.json").write_text(json.dumps({"vggt_overrides": {"encoder_num_heads": 2, "num_heads": 2}}))
    images = torch.rand(1, 2, 3, 42, 56)
    torch.testing.assert_close(
        load_geometry_teacher(tmp_path / "model.pt")(images), branch.encoder(images).patch_tokens
    )


def test_training_starts_from_a_vggt_checkpoint(tmp_path, tokenizer):
    from tests.helpers import micro_config
    from vidllm.config import config_from_dict
    from vidllm.training.module import VidLLMModule

    cfg = micro_config()
    source = ReconstructionModel(cfg.encoder, cfg.recon)
    torch.save(source.vggt_state_dict(), tmp_path / "model.pt")
    cfg = config_from_dict(
        {"recon": {"vggt_checkpoint": str(tmp_path / "model.pt")}, "train": {"init_from": None}}, base=cfg
    )
    module = VidLLMModule(cfg, tokenizer)
    for part in ("encoder", "aggregator", "camera_head", "depth_head"):
        mine, theirs = getattr(module.model, part).state_dict(), getattr(source, part).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs), part
