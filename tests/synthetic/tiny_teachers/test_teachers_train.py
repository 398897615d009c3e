"""The tiny synthetic teachers train, save in the real formats, and load through the stage-1 loaders."""

import json

import pytest
import torch

from tests.helpers import micro_config
from vidllm.synthetic.tiny_teachers.build import build_teachers
from vidllm.synthetic.tiny_teachers.teacher_config import TeacherTrainConfig
from vidllm.training.frozen_teachers import load_geometry_teacher, load_semantic_teacher

SMALL = {
    "vision_hidden": 16,
    "vision_layers": 1,
    "vision_heads": 2,
    "vision_image_size": 56,
    "text_hidden": 16,
    "text_layers": 1,
    "text_heads": 2,
    "projection_dim": 16,
}


def test_teachers_train_save_and_load(tmp_path, synthetic_root):
    cfg = micro_config(**{"data.root": str(synthetic_root)})
    tcfg = TeacherTrainConfig(
        geometry_steps=3,
        semantic_steps=3,
        geometry_minutes=0,
        semantic_minutes=0,
        eval_every=100,
        semantic_batch=8,
        **SMALL,
    )
    paths = build_teachers(cfg, tmp_path / "teachers", tcfg=tcfg)
    geo_meta = json.loads((paths["geometry"].parent / "meta.json").read_text())
    sem_meta = json.loads((paths["semantic"] / "meta.json").read_text())
    assert geo_meta["steps"] == 3 and sem_meta["steps"] == 3
    assert all(torch.isfinite(torch.tensor(m["loss_curve"])).all() for m in (geo_meta, sem_meta))
    images = torch.rand(1, 2, 3, 56, 70)
    geo = load_geometry_teacher(paths["geometry"])  # head count read from meta.json
    assert geo(images).shape == (2, 20, cfg.encoder.hidden_size)
    sem = load_semantic_teacher(paths["semantic"])
    tokens, grid = sem(images)
    assert tokens.shape[-1] == 16 and tokens.shape[1] == grid[0] * grid[1]
    assert not any(p.requires_grad for p in [*geo.parameters(), *sem.parameters()])


@pytest.mark.slow
def test_teachers_learn_beyond_their_untrained_start(tmp_path):
    from vidllm.synthetic.world import SynthParams, generate_dataset

    root = tmp_path / "data"
    generate_dataset(
        root, 10, seed=3, params=SynthParams(num_frames=16, width=112, height=84, depth_width=80, depth_height=60)
    )
    cfg = micro_config(**{"data.root": str(root)})
    tcfg = TeacherTrainConfig(
        geometry_steps=120,
        semantic_steps=120,
        geometry_minutes=0,
        semantic_minutes=0,
        eval_every=1000,
        semantic_batch=16,
        **SMALL,
    )
    paths = build_teachers(cfg, tmp_path / "teachers", tcfg=tcfg)
    geo = json.loads((paths["geometry"].parent / "meta.json").read_text())["held_out"]
    sem = json.loads((paths["semantic"] / "meta.json").read_text())["held_out"]
    assert geo["trained"]["abs_rel"] < geo["untrained"]["abs_rel"]
    assert sem["trained"]["i2t_acc"] > max(sem["untrained"]["i2t_acc"], sem["trained"]["chance"])
