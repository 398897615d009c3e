"""``recon.reconstruct`` (the library functions) on a few tiny generated frames, reading the PLY back with open3d.
Its command line is ``vidllm export-pointcloud --vggt`` (tests/commands/test_export_pointcloud.py)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

try:  # tests/recon is a rootdir-style test folder (no __init__.py); also works if it becomes a package
    from vggt_reference import make_vggt_state_dict
except ImportError:  # pragma: no cover
    from tests.recon.vggt_reference import make_vggt_state_dict

from recon.reconstruct import list_frames, load_frames, preprocess_image, reconstruct, write_ply
from recon.vggt_loader import from_vggt_checkpoint

OVERRIDES = {"num_heads": 4, "camera_num_heads": 4, "depth_head_layers": [0, 1, 1, 2], "encoder_num_heads": 4}


def _frames(folder, n=3, size=(60, 45)):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in (10, 2, 1)[:n]:
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _model(tmp_path):
    ckpt = tmp_path / "model.pt"
    torch.save(make_vggt_state_dict(), ckpt)
    return from_vggt_checkpoint(ckpt, **OVERRIDES).eval()


def test_frames_sorted_numerically_and_vggt_preprocessing(tmp_path):
    folder = _frames(tmp_path / "f")
    assert [p.name for p in list_frames(folder)] == ["1.png", "2.png", "10.png"]
    img = preprocess_image(folder / "1.png", image_size=56)
    assert img.shape == (3, 42, 56)  # 45·56/60 = 42 → nearest multiple of 14
    assert 0.0 <= img.min() and img.max() <= 1.0


def test_reconstruct_and_write_ply_open3d_reads_back(tmp_path):
    import open3d as o3d

    images, files = load_frames(_frames(tmp_path / "f"), image_size=56)
    assert images.shape == (3, 3, 42, 56) and [p.name for p in files] == ["1.png", "2.png", "10.png"]
    model = _model(tmp_path)
    points, colors = reconstruct(model, images)
    out = write_ply(tmp_path / "out" / "points.ply", points, colors)
    pcd = o3d.io.read_point_cloud(str(out))
    assert len(pcd.points) == 3 * 42 * 56
    assert pcd.has_colors() and np.isfinite(np.asarray(pcd.points)).all()
    assert [p.name for p in out.parent.iterdir()] == ["points.ply"]  # no temporary left behind
    kept, _ = reconstruct(model, images, conf_threshold=1.5)  # VGGT's confidence is 1 + exp(.) ≥ 1
    assert 0 < len(kept) <= 3 * 42 * 56
    assert len(reconstruct(model, images, conf_threshold=1e30)[0]) == 0


def test_frame_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        load_frames(tmp_path)
    with pytest.raises(ValueError, match="not a directory"):
        list_frames(tmp_path / "missing")


def test_reconstruct_chunked_long_video(tmp_path):
    """``chunk_size``: every frame reconstructed; a chunk as long as the video equals the one-forward output."""
    folder = tmp_path / "long"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (45, 60, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    images, _ = load_frames(folder, image_size=56)
    model = _model(tmp_path)
    full, _ = reconstruct(model, images)
    one, _ = reconstruct(model, images, chunk_size=8, overlap=2)
    np.testing.assert_array_equal(one, full)
    chunked, _ = reconstruct(model, images, chunk_size=3, overlap=1)
    assert chunked.shape == (5 * 42 * 56, 3) and np.isfinite(chunked).all()
    anchored, _ = reconstruct(model, images, chunk_size=3, overlap=2, layout="anchored")
    assert anchored.shape == (5 * 42 * 56, 3)


def test_recon_is_no_entry_point():
    """``python -m recon.reconstruct`` is gone: the leaf package has no command line of its own."""
    source = (Path(__file__).resolve().parents[2] / "recon" / "reconstruct.py").read_text()
    assert "__main__" not in source and "argparse" not in source
