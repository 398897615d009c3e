"""Reversed geometry-teacher clips: frame order flipped, poses then relative to the new first frame."""

import numpy as np
import pytest
import torch

from recon.geometry import closed_form_inverse_se3, to_homogeneous
from recon.losses import normalize_gt_scene
from vidllm.synthetic.tiny_teachers.geometry_teacher import reverse_clips, sample_clips
from vidllm.synthetic.tiny_teachers.scenes import SceneFrames
from vidllm.synthetic.tiny_teachers.teacher_config import TeacherTrainConfig


def _scene(frames: int = 12) -> SceneFrames:
    gen = torch.Generator().manual_seed(0)
    yaw = torch.cumsum(torch.rand(frames, generator=gen) * 0.1, 0)
    rot = torch.zeros(frames, 3, 3)
    rot[:, 0, 0] = rot[:, 2, 2] = torch.cos(yaw)
    rot[:, 0, 2], rot[:, 2, 0] = torch.sin(yaw), -torch.sin(yaw)
    rot[:, 1, 1] = 1
    extr = torch.cat([rot, torch.randn(frames, 3, 1, generator=gen)], dim=-1)
    images = (
        torch.arange(frames, dtype=torch.float32).view(frames, 1, 1, 1).expand(frames, 3, 4, 4).clone()
    )  # frame index as pixel value
    return SceneFrames(
        "s",
        images,
        torch.ones(frames, 4, 4),
        extr,
        torch.eye(3).expand(frames, 3, 3).clone(),
        torch.eye(4),
        [],
        torch.zeros(0, 6),
    )


def _relative_to_first(extr: torch.Tensor) -> torch.Tensor:
    """GT world→camera of each frame relative to frame 0 of the given order: ``E_j · E_0⁻¹`` ``[S, 3, 4]``."""
    return (to_homogeneous(extr) @ closed_form_inverse_se3(to_homogeneous(extr[:1])))[:, :3]


def test_reversed_clip_poses_are_relative_to_its_new_first_frame():
    scene = _scene()
    batch = sample_clips([scene], np.random.default_rng(0), batch=6, clip_frames=4, span=8, reverse_prob=1.0)
    order = batch["images"][:, :, 0, 0, 0].long()  # [B, S] scene frame indices
    assert (order[:, 1:] < order[:, :-1]).all()  # every clip plays backwards
    norm = normalize_gt_scene(batch["extrinsics"], batch["intrinsics"], batch["depth"])
    for b in range(order.shape[0]):
        expected = _relative_to_first(scene.extrinsics[order[b]])
        expected[:, :, 3] /= norm["scale"][b]
        torch.testing.assert_close(norm["extrinsics"][b], expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(norm["extrinsics"][b, 0], torch.eye(3, 4), rtol=0, atol=1e-5)


def test_reverse_probability_and_forward_default():
    scene = _scene()
    fwd = sample_clips([scene], np.random.default_rng(0), batch=8, clip_frames=4, span=8)["images"][:, :, 0, 0, 0]
    assert (fwd[:, 1:] > fwd[:, :-1]).all()
    mixed = sample_clips([scene], np.random.default_rng(1), batch=200, clip_frames=4, span=8, reverse_prob=0.5)[
        "images"
    ][:, :, 0, 0, 0]
    share = (mixed[:, 1] < mixed[:, 0]).float().mean().item()
    assert 0.35 < share < 0.65


def test_reverse_clips_flips_every_tensor():
    batch = sample_clips([_scene()], np.random.default_rng(0), batch=2, clip_frames=4, span=8)
    rev = reverse_clips(batch)
    for key, value in batch.items():
        torch.testing.assert_close(rev[key], value.flip(1))


def test_config_checks_reverse_fields():
    with pytest.raises(ValueError, match="reverse_prob"):
        TeacherTrainConfig(reverse_prob=1.5)
    with pytest.raises(ValueError, match="eval_clip_frames"):
        TeacherTrainConfig(eval_clip_frames=1)


def test_evaluate_geometry_scores_both_orders():
    from tests.recon.test_relative_pose import _model
    from vidllm.synthetic.tiny_teachers.geometry_teacher import evaluate_geometry

    scene = _scene(6)
    clips = sample_clips([scene], np.random.default_rng(0), batch=1, clip_frames=3, span=6)
    clips["images"] = torch.rand(1, 3, 3, 28, 28)
    clips["depth"] = torch.ones(1, 3, 28, 28)
    m = evaluate_geometry(_model(True).eval(), clips)
    assert {"rra@15", "rra@15_reversed", "rra@15_mean", "rra@15_static", "rot_err_deg_reversed"} <= set(m)
    assert m["rra@15_mean"] == (m["rra@15"] + m["rra@15_reversed"]) / 2
