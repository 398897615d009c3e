"""Clip sampling and preprocessing: geometry of resize/crop, depth–colour consistency, samplers, bad inputs."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch

from recon.geometry import depth_to_world_points, project_points
from vidllm.data import load_scannet_scene
from vidllm.data.clip import load_clip, output_geometry, resample_depth, resize_crop_intrinsics
from vidllm.data.sampling import (
    frame_voxel_keys,
    sample_coverage,
    sample_segments,
    sample_stride,
    sample_uniform,
    valid_frame_indices,
)
from vidllm.errors import DataError


def test_output_geometry_shorter_and_longer():
    assert output_geometry(968, 1296, 518, "shorter") == (518, 694, 0, 4, 518, 686)
    assert output_geometry(168, 224, 518, "longer") == (388, 518, 5, 0, 378, 518)
    rh, rw, top, left, oh, ow = output_geometry(84, 112, 112, "shorter")
    assert (oh % 14, ow % 14) == (0, 0) and (rh, rw) == (112, 149)


def test_intrinsics_follow_resize_and_crop_of_pixel_centres():
    k = np.array([[100.0, 0, 55.5], [0, 90.0, 41.5], [0, 0, 1]])
    out = resize_crop_intrinsics(k, (84, 112), (168, 224), (3, 5))
    # a camera point seen at input pixel p is seen at output pixel (p + ½)·2 − ½ − crop
    x = np.array([0.3, -0.2, 2.0])
    p_in = (k @ x)[:2] / x[2]
    p_out = (out @ x)[:2] / x[2]
    np.testing.assert_allclose(p_out, (p_in + 0.5) * 2 - 0.5 - np.array([5, 3]), atol=1e-9)


def test_depth_resampling_picks_the_nearest_depth_pixel_of_each_ray():
    k_depth = np.array([[40.0, 0, 19.5], [0, 40.0, 14.5], [0, 0, 1]])
    k_out = np.array([[70.0, 0, 34.0], [0, 70.0, 27.0], [0, 0, 1]])
    codes = torch.arange(30 * 40, dtype=torch.float32).reshape(1, 30, 40) + 1
    out = resample_depth(codes, k_depth, k_out, (56, 70))
    for v, u in [(0, 0), (27, 34), (10, 60), (55, 69), (31, 3)]:
        ray = np.linalg.inv(k_out) @ [u, v, 1.0]
        ud, vd = (k_depth @ ray)[:2]
        iu, iv = int(np.floor(ud + 0.5)), int(np.floor(vd + 0.5))
        expected = iv * 40 + iu + 1 if 0 <= iu < 40 and 0 <= iv < 30 else 0
        assert out[0, v, u].item() == expected


def test_clip_tensors_and_projection_consistency(synthetic_root):
    scene = load_scannet_scene(synthetic_root / "scans" / "scene0000_00")
    idx = sample_uniform(valid_frame_indices(scene.valid), 4)
    clip = load_clip(scene, idx, 112)
    s, h, w = 4, 112, 140
    assert clip["images"].shape == (s, 3, h, w) and clip["images"].dtype == torch.float32
    assert 0 <= clip["images"].min() and clip["images"].max() <= 1
    assert (
        clip["depth"].shape == (s, h, w)
        and clip["extrinsics"].shape == (s, 3, 4)
        and clip["intrinsics"].shape == (s, 3, 3)
    )
    torch.testing.assert_close(clip["extrinsics"][0], torch.eye(4)[:3], atol=1e-5, rtol=0)
    w0 = scene.axis_alignment @ scene.poses_c2w[idx[0]]
    np.testing.assert_allclose(clip["world_from_model"].numpy(), w0, atol=1e-5)
    assert clip["gt_boxes"].shape == (len(scene.objects.object_ids), 6)
    # a world point from the raw depth camera projects into the preprocessed frame at a pixel whose
    # preprocessed depth equals the point's depth (depth lives in the colour camera after preprocessing)
    k_d, i = scene.intrinsic_depth, idx[2]
    from vidllm.data.scannet_io import read_depth

    raw = read_depth(scene.depth_path(scene.frame_ids[i]))
    vs, us = np.meshgrid(np.arange(5, raw.shape[0] - 5, 7), np.arange(5, raw.shape[1] - 5, 7), indexing="ij")
    z = raw[vs, us].astype(np.float64)
    cam = np.stack([(us - k_d[0, 2]) / k_d[0, 0] * z, (vs - k_d[1, 2]) / k_d[1, 1] * z, z], -1).reshape(-1, 3)
    world = cam @ scene.aligned_c2w[i, :3, :3].T + scene.aligned_c2w[i, :3, 3]
    model = (world - w0[:3, 3]) @ w0[:3, :3]  # aligned world → model frame
    uv, depth_of_point = project_points(torch.from_numpy(model).float(), clip["extrinsics"][2], clip["intrinsics"][2])
    pix = uv.round().long()
    inside = (pix[:, 0] >= 0) & (pix[:, 0] < w) & (pix[:, 1] >= 0) & (pix[:, 1] < h)
    sampled = clip["depth"][2][pix[inside, 1], pix[inside, 0]]
    err = (sampled - depth_of_point[inside]).abs()
    assert inside.sum() > 50 and err.median() < 0.01 and (err < 0.05).float().mean() > 0.9
    # unprojected preprocessed depth, mapped with world_from_model, agrees with the raw world points' extent
    pts = depth_to_world_points(clip["depth"], clip["extrinsics"], clip["intrinsics"])[clip["depth"] > 0]
    aligned = pts.double() @ clip["world_from_model"][:3, :3].double().T + clip["world_from_model"][:3, 3].double()
    room = json_room(synthetic_root, "scene0000_00")
    inside_room = (aligned[:, 2] > -0.02) & (aligned[:, 2] < room[2] + 0.02)
    assert inside_room.double().mean() > 0.98  # nearest-neighbour depth at silhouettes may belong to the background


def json_room(root, scene_id):
    import json

    return json.loads((root / "synthetic_gt" / f"{scene_id}.json").read_text())["room_size"]


def test_invalid_pose_frames_skipped_with_count(caplog):
    valid = np.array([True, False, True, False, True])
    with caplog.at_level(logging.WARNING):
        assert valid_frame_indices(valid, "scene0009_00").tolist() == [0, 2, 4]
    assert "skipped 2 of 5 frames" in caplog.text and "scene0009_00" in caplog.text
    with pytest.raises(ValueError, match="no frame has a valid pose"):
        valid_frame_indices(np.zeros(3, bool), "scene0009_00")


def test_uniform_and_stride_samplers():
    cand = np.arange(0, 100, 2)
    assert sample_uniform(cand, 5).tolist() == [0, 24, 50, 74, 98]
    assert sample_uniform(np.array([3, 7]), 4).tolist() == [3, 3, 7, 7]
    assert sample_stride(cand, 4, 3, start=1).tolist() == [2, 8, 14, 20]
    assert sample_stride(cand, 10, 20).tolist() == (cand[np.arange(10) * 5]).tolist()  # stride shrinks to fit
    with pytest.raises(ValueError, match="frame_stride"):
        sample_stride(cand, 2, 0)


def test_segment_sampler_takes_one_frame_per_segment():
    cand = np.arange(0, 64, 2)  # 32 candidates, 4 segments of 8
    assert sample_segments(cand, 4).tolist() == [cand[4], cand[12], cand[20], cand[28]]  # the middle of each
    seen = set()
    for seed in range(200):
        pos = np.searchsorted(cand, sample_segments(cand, 4, np.random.default_rng(seed)))
        assert (pos // 8 == np.arange(4)).all()  # one frame inside each segment, in order
        seen.update(pos.tolist())
    assert seen == set(range(32))  # every candidate is drawn at some point
    assert sample_segments(np.array([3, 7]), 4).tolist() == [3, 3, 7, 7]  # fewer frames than segments: repeats
    assert sample_segments(np.array([3, 7]), 4, np.random.default_rng(0)).tolist() == [3, 3, 7, 7]


def test_coverage_sampler_is_greedy_max_coverage():
    keys = [np.array([1, 2, 3]), np.array([1, 2, 3, 4, 5, 6]), np.array([7]), np.array([6, 7, 8, 9]), np.array([1])]
    # greedy: frame 1 (6 new), then frame 3 (3 new: 7, 8, 9); nothing new remains → fill with unused frames
    out = sample_coverage(np.array([10, 11, 12, 13, 14]), 2, keys)
    assert out.tolist() == [11, 13]
    assert sample_coverage(np.array([10, 11, 12, 13, 14]), 3, keys).tolist() == [10, 11, 13]


def test_frame_voxel_keys_match_bruteforce():
    depth = np.full((6, 8), 2.0, dtype=np.float32)
    depth[0, 0] = 0
    k = np.array([[4.0, 0, 3.5], [0, 4.0, 2.5], [0, 0, 1]])
    c2w = np.eye(4)
    c2w[:3, 3] = [1.0, 0.0, 0.0]
    keys = frame_voxel_keys(depth, k, c2w, voxel=0.5, step=1)
    cells = set()
    for v in range(6):
        for u in range(8):
            if depth[v, u] > 0:
                p = np.array([(u - 3.5) / 4 * 2, (v - 2.5) / 4 * 2, 2.0]) + [1, 0, 0]
                cells.add(tuple(np.floor(p / 0.5).astype(int)))
    assert len(keys) == len(cells)


# ----------------------------------------------------------------------------- bad inputs
@pytest.fixture()
def scene_copy(synthetic_root, tmp_path):
    dst = tmp_path / "scene0001_00"
    shutil.copytree(synthetic_root / "scans" / "scene0001_00", dst)
    return dst


def test_corrupt_jpeg(scene_copy):
    scene = load_scannet_scene(scene_copy)
    idx = np.nonzero(scene.valid)[0][:3]
    scene.color_path(scene.frame_ids[idx[1]]).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match=rf"color/{scene.frame_ids[idx[1]]}.jpg: corrupt or unreadable colour image"):
        load_clip(scene, idx, 56)


def test_depth_png_of_wrong_size(scene_copy):
    from PIL import Image

    scene = load_scannet_scene(scene_copy)
    idx = np.nonzero(scene.valid)[0][:3]
    Image.fromarray(np.zeros((10, 12), np.uint16)).save(scene.depth_path(scene.frame_ids[idx[0]]))
    with pytest.raises(DataError, match=r"depth image is 10x12 \(HxW\), expected 60x80"):
        load_clip(scene, idx, 56)


def test_clip_with_invalid_pose_frame_refused(scene_copy):
    scene = load_scannet_scene(scene_copy)
    bad = int(np.nonzero(~scene.valid)[0][0])
    with pytest.raises(DataError, match="invalid poses"):
        load_clip(scene, np.array([0, bad]), 56)
