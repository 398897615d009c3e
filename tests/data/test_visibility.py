"""The visibility rule shared by the generator and the evaluation (vidllm.data.visibility)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vidllm.data.visibility import box_pixel_counts, clip_visible_ids, instance_pixel_counts, visible_objects


def test_instance_pixel_counts_by_hand():
    inst = np.array([[[0, 0, 1], [-1, 2, 5]], [[1, 1, 1], [1, -1, 0]]])  # [F=2, 2, 3]; 5 is out of range
    counts = instance_pixel_counts(inst, 3)
    np.testing.assert_array_equal(counts, [[2, 1, 1], [1, 4, 0]])
    with pytest.raises(ValueError, match=r"\[F, H, W\]"):
        instance_pixel_counts(inst[0], 3)


def test_visible_objects_rule_by_hand():
    counts = np.array([[10, 0, 5, 9], [10, 10, 5, 0], [0, 10, 5, 0]])  # [F=3, O=4], 100-pixel frames
    # >= 10 % of the frame in >= 2 frames: object 0 (2 frames), 1 (2 frames); 2 never reaches 10 px; 3 once below
    np.testing.assert_array_equal(visible_objects(counts, 100, 0.10, 2), [True, True, False, False])
    # min_frames 3 of a 3-frame clip is capped at ceil(3 / 2) = 2 frames
    np.testing.assert_array_equal(visible_objects(counts, 100, 0.05, 3), [True, True, True, False])
    np.testing.assert_array_equal(
        visible_objects(np.concatenate([counts, np.zeros((3, 4))]), 100, 0.05, 3), [False, False, True, False]
    )
    np.testing.assert_array_equal(visible_objects(counts, 100, 0.09, 1), [True, True, False, True])
    # a 1-frame clip needs that frame
    np.testing.assert_array_equal(visible_objects(counts[:1], 100, 0.10, 2), [True, False, False, False])
    with pytest.raises(ValueError, match="min_fraction"):
        visible_objects(counts, 100, 1.5, 2)


def test_box_pixel_counts_against_hand_unprojection():
    # one camera at the model origin looking down +z at a wall 2 m away; 4x6 image, f = 2, c = (2.5, 1.5)
    depth = torch.full((1, 4, 6), 2.0)
    depth[0, 0, 0] = 0.0  # an invalid pixel is never counted
    ext = torch.eye(4)[:3][None]
    k = torch.tensor([[[2.0, 0, 2.5], [0, 2.0, 1.5], [0, 0, 1]]])
    wfm = torch.eye(4)
    wfm[:3, 3] = torch.tensor([10.0, 0.0, 0.0])  # model frame shifted in the world
    # box A covers world x in [10, 12]: camera x = u - 2.5 in [0, 2] → columns u = 3, 4, all rows; box B is behind the camera
    boxes = torch.tensor([[11.0, 0.0, 2.0, 2.0, 10.0, 0.5], [10.0, 0.0, -2.0, 1.0, 1.0, 1.0]])
    counts = box_pixel_counts(depth, ext, k, wfm, boxes, margin=0.0)
    u, v = np.meshgrid(np.arange(6), np.arange(4))
    x = (u - 2.5) / 2.0 * 2.0 + 10.0
    expected_a = int(((x >= 10) & (x <= 12) & (depth[0].numpy() > 0)).sum())
    assert counts.tolist() == [[expected_a, 0]] and expected_a == 8


def test_generator_visibility_matches_depth_and_boxes(synthetic_root):
    """The generator's instance-map visibility and the evaluation's depth+box visibility agree on the clip."""
    from vidllm.config import DataConfig
    from vidllm.evaluation.clips import SceneClips, eval_data_config

    cfg = eval_data_config(DataConfig(num_frames=8, image_size=112), synthetic_root)
    clips = SceneClips(cfg, "train", ["recon"])
    agree = total = 0
    for scene_id in clips.dataset.scene_ids:
        gt = json.loads((synthetic_root / "synthetic_gt" / f"{scene_id}.json").read_text())
        scene = clips.scene(scene_id)
        clip = clips.clip(scene_id)
        assert (
            clip["frame_ids"].tolist() == gt["visibility"]["clip_frames"]
        )  # the generator asks about the model's uniform clip
        seen = clip_visible_ids(clip, scene.objects.object_ids, scene.objects.boxes)
        for obj in gt["objects"]:
            total += 1
            agree += (obj["object_id"] in seen) == obj["visible_in_clip"]
    assert total > 0 and agree / total >= 0.85
