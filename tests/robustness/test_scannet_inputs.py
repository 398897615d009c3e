"""ScanNet scene folders with bad content: broken poses, depth and intrinsics and a missing meta file
give a ``DataError`` naming the file (or a counted warning for skipped frames); split lists cannot
point outside the data root."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from recon.losses import ReconLoss, metric_depth_loss
from tests.data.test_data_readers import write_scene
from vidllm.config import DataConfig
from vidllm.data.clip import load_clip
from vidllm.data.dataset import VidLLMDataset, split_scene_ids
from vidllm.data.scannet import load_scannet_scene
from vidllm.data.scannet_io import read_split
from vidllm.errors import DataError


@pytest.fixture()
def data_copy(synthetic_root, tmp_path):
    """A private copy of the session's synthetic dataset (3 scenes × 8 frames), safe to damage."""
    dst = tmp_path / "data"
    shutil.copytree(synthetic_root, dst)
    return dst


def _cfg(root, **kw):
    base = dict(
        root=str(root), num_frames=4, image_size=56, batch_size=1, num_workers=0, tasks=["recon"], task_weights=[1.0]
    )
    return DataConfig(**{**base, **kw})


# ----------------------------------------------------------------------------- poses
@pytest.mark.parametrize("bad", ["nan", "-inf", "inf", "mixed"])
def test_non_finite_poses_mark_frames_invalid(tmp_path, bad):
    scene_dir = write_scene(tmp_path, pose_names=("0", "2", "3", "10"))
    body = {
        "nan": "nan " * 16,
        "-inf": "-inf " * 16,
        "inf": "inf " * 16,
        "mixed": "1 0 0 nan\n0 1 0 0\n0 0 1 0\n0 0 0 1\n",
    }[bad]
    (scene_dir / "pose" / "3.txt").write_text(body)
    scene = load_scannet_scene(scene_dir, with_objects=False)
    assert scene.frame_ids.tolist() == [0, 2, 3, 10]
    assert scene.valid.tolist() == [True, True, False, True]
    assert np.isfinite(scene.aligned_c2w[scene.valid]).all()


def test_dataset_skips_invalid_pose_frames_with_a_count(data_copy, caplog):
    scene_dir = data_copy / "scans" / "scene0000_00"
    before = load_scannet_scene(scene_dir, with_objects=False)
    valid_ids = before.frame_ids[before.valid]
    broken = [int(valid_ids[1]), int(valid_ids[-1])]
    for fid in broken:
        (scene_dir / "pose" / f"{fid}.txt").write_text("nan " * 16)
    skipped = int((~before.valid).sum()) + len(broken)
    ds = VidLLMDataset(_cfg(data_copy, num_frames=8), "train")
    index = [i for i, (_, s) in enumerate(ds.samples) if s == "scene0000_00"][0]
    with caplog.at_level(logging.WARNING):
        item = ds[index]
    assert not set(broken) & set(item["frame_ids"].tolist())
    assert torch.isfinite(item["extrinsics"]).all() and torch.isfinite(item["world_from_model"]).all()
    assert f"scene0000_00: skipped {skipped} of {before.frame_ids.size} frames" in caplog.text


def test_scene_without_any_valid_pose_is_a_clear_error(data_copy):
    scene_dir = data_copy / "scans" / "scene0000_00"
    for pose in (scene_dir / "pose").iterdir():
        pose.write_text("-inf " * 16)
    ds = VidLLMDataset(_cfg(data_copy), "train")
    index = [i for i, (_, s) in enumerate(ds.samples) if s == "scene0000_00"][0]
    with pytest.raises(ValueError, match="no frame has a valid pose"):
        ds[index]


# ----------------------------------------------------------------------------- depth
def test_all_zero_depth_gives_an_all_invalid_clip_and_finite_losses(data_copy):
    scene = load_scannet_scene(data_copy / "scans" / "scene0001_00")
    idx = np.nonzero(scene.valid)[0][:2]
    for i in idx:
        path = scene.depth_path(scene.frame_ids[i])
        h, w = np.asarray(Image.open(path)).shape
        Image.fromarray(np.zeros((h, w), np.uint16)).save(path)
    clip = load_clip(scene, idx, 56)
    assert (clip["depth"] == 0).all() and torch.isfinite(clip["images"]).all()
    s, hh, ww = clip["depth"].shape
    pred_depth = (torch.rand(1, s, hh, ww) + 0.5).requires_grad_()
    pred = {
        "pose_enc_list": [torch.zeros(1, s, 9, requires_grad=True)],
        "depth": pred_depth,
        "depth_conf": 1 + torch.rand(1, s, hh, ww),
    }
    gt = {"extrinsics": clip["extrinsics"][None], "intrinsics": clip["intrinsics"][None], "depth": clip["depth"][None]}
    losses = ReconLoss()(pred, gt)
    total = losses["loss"] + metric_depth_loss(pred_depth, gt["depth"])
    assert all(torch.isfinite(v).all() for v in losses.values())
    total.backward()
    assert torch.isfinite(pred_depth.grad).all() and torch.isfinite(pred["pose_enc_list"][0].grad).all()


def test_depth_png_that_is_not_16_bit_single_channel(data_copy):
    scene = load_scannet_scene(data_copy / "scans" / "scene0001_00")
    idx = np.nonzero(scene.valid)[0][:2]
    path = scene.depth_path(scene.frame_ids[idx[0]])
    h, w = np.asarray(Image.open(path)).shape
    Image.new("RGB", (w, h)).save(path)
    with pytest.raises(DataError, match=rf"{path.name}: depth PNG must be 16-bit single channel, got mode RGB"):
        load_clip(scene, idx, 56)


# ----------------------------------------------------------------------------- intrinsics and meta
@pytest.mark.parametrize("kind", ["color", "depth"])
@pytest.mark.parametrize("body, got", [("500 0 320\n0 500 240\n0 0 1\n", 9), ("500 0 320 0\n", 4), ("", 0)])
def test_intrinsics_of_the_wrong_shape_name_file_and_expected_shape(tmp_path, kind, body, got):
    scene_dir = write_scene(tmp_path)
    (scene_dir / "intrinsic" / f"intrinsic_{kind}.txt").write_text(body)
    with pytest.raises(
        DataError, match=rf"intrinsic_{kind}\.txt: intrinsic file must hold 16 numbers \(4x4\), got {got}$"
    ):
        load_scannet_scene(scene_dir, with_objects=False)


def test_non_numeric_intrinsics(tmp_path):
    scene_dir = write_scene(tmp_path)
    (scene_dir / "intrinsic" / "intrinsic_color.txt").write_text("fx 0 0 0\n" * 4)
    with pytest.raises(DataError, match=r"intrinsic_color\.txt: intrinsic file holds a non-numeric value"):
        load_scannet_scene(scene_dir, with_objects=False)


def test_scene_folder_missing_its_meta_file(tmp_path, data_copy):
    scene_dir = write_scene(tmp_path)
    (scene_dir / "scene0042_00.txt").unlink()
    with pytest.raises(DataError, match=r"scene0042_00/scene0042_00\.txt: scene meta file not found"):
        load_scannet_scene(scene_dir)
    (data_copy / "scans" / "scene0000_00" / "scene0000_00.txt").unlink()
    ds = VidLLMDataset(_cfg(data_copy), "train")
    index = [i for i, (_, s) in enumerate(ds.samples) if s == "scene0000_00"][0]
    with pytest.raises(DataError, match=r"scene0000_00\.txt: scene meta file not found"):
        ds[index]


def test_meta_line_without_equals_sign(tmp_path):
    scene_dir = write_scene(tmp_path)
    (scene_dir / "scene0042_00.txt").write_text("axisAlignment 1 0 0 0\n")
    with pytest.raises(DataError, match=r"scene0042_00\.txt: line 1: expected 'key = value'"):
        load_scannet_scene(scene_dir)


# ----------------------------------------------------------------------------- split lists stay inside the root
@pytest.mark.parametrize("entry", ["../outside", "..", "scans/../../outside", "/etc", "sub\\..\\x", "."])
def test_split_entries_cannot_escape_the_data_root(tmp_path, entry):
    (tmp_path / "outside").mkdir()
    root = tmp_path / "root"
    (root / "scans" / "scene0000_00").mkdir(parents=True)
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text(f"scene0000_00\n{entry}\n")
    with pytest.raises(DataError, match=r"train\.txt: line 2: .* is not a scene folder name"):
        read_split(root / "splits" / "train.txt")
    with pytest.raises(DataError, match="not a scene folder name"):
        split_scene_ids(_cfg(root), "train")


def test_plain_split_entries_still_read(tmp_path):
    (tmp_path / "val.txt").write_text("scene0000_00\n\n  scene0001_00  \nmy_scene-2\n")
    assert read_split(tmp_path / "val.txt") == ["scene0000_00", "scene0001_00", "my_scene-2"]
