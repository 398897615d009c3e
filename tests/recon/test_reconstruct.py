"""``python -m recon.reconstruct`` on a few tiny generated frames, reading the PLY back with open3d."""

import subprocess
import sys

import numpy as np
import torch
from PIL import Image

try:  # tests/recon is a rootdir-style test folder (no __init__.py); also works if it becomes a package
    from vggt_reference import make_vggt_state_dict
except ImportError:  # pragma: no cover
    from tests.recon.vggt_reference import make_vggt_state_dict

from recon.reconstruct import list_frames, main, preprocess_image

OVERRIDES = ["num_heads=4", "camera_num_heads=4", "depth_head_layers=[0,1,1,2]", "encoder_num_heads=4"]


def _frames(folder, n=3, size=(60, 45)):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in (10, 2, 1)[:n]:
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_frames_sorted_numerically_and_vggt_preprocessing(tmp_path):
    folder = _frames(tmp_path / "f")
    assert [p.name for p in list_frames(folder)] == ["1.png", "2.png", "10.png"]
    img = preprocess_image(folder / "1.png", image_size=56)
    assert img.shape == (3, 42, 56)  # 45·56/60 = 42 → nearest multiple of 14
    assert 0.0 <= img.min() and img.max() <= 1.0


def test_cli_writes_ply_open3d_reads_back(tmp_path):
    import open3d as o3d

    folder = _frames(tmp_path / "f")
    ckpt = tmp_path / "model.pt"
    torch.save(make_vggt_state_dict(), ckpt)
    out = tmp_path / "out" / "points.ply"
    args = ["--vggt", str(ckpt), "--frames", str(folder), "--out", str(out), "--image-size", "56", "--device", "cpu"]
    for o in OVERRIDES:
        args += ["--override", o]
    assert main(args) == 0
    pcd = o3d.io.read_point_cloud(str(out))
    assert len(pcd.points) == 3 * 42 * 56
    assert pcd.has_colors() and np.isfinite(np.asarray(pcd.points)).all()
    assert [p.name for p in out.parent.iterdir()] == ["points.ply"]  # no temporary left behind
    kept = main(args + ["--conf-threshold", "1.5"])
    assert kept == 0 and 0 < len(o3d.io.read_point_cloud(str(out)).points) <= 3 * 42 * 56
    assert main(args + ["--conf-threshold", "1e30"]) == 2  # nothing passes: clear error, old file kept
    assert out.exists()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["--vggt", str(tmp_path / "x.pt"), "--frames", str(tmp_path), "--out", str(tmp_path / "o.ply")]) == 2
    assert "no images" in capsys.readouterr().err


def test_module_entry_point_help():
    res = subprocess.run(
        [sys.executable, "-m", "recon.reconstruct", "--help"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0 and "--conf-threshold" in res.stdout


def test_cli_chunked_long_video(tmp_path, capsys):
    """--chunk-size: every frame reconstructed; a chunk as long as the video equals the one-forward output."""
    import open3d as o3d

    folder = tmp_path / "long"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (45, 60, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    ckpt = tmp_path / "model.pt"
    torch.save(make_vggt_state_dict(), ckpt)
    base = ["--vggt", str(ckpt), "--frames", str(folder), "--image-size", "56", "--device", "cpu"]
    for o in OVERRIDES:
        base += ["--override", o]
    read = lambda p: np.asarray(o3d.io.read_point_cloud(str(p)).points)  # noqa: E731
    assert main(base + ["--out", str(tmp_path / "full.ply")]) == 0
    assert main(base + ["--out", str(tmp_path / "one.ply"), "--chunk-size", "8", "--overlap", "2"]) == 0
    np.testing.assert_array_equal(read(tmp_path / "one.ply"), read(tmp_path / "full.ply"))
    assert main(base + ["--out", str(tmp_path / "chunks.ply"), "--chunk-size", "3", "--overlap", "1"]) == 0
    chunked = read(tmp_path / "chunks.ply")
    assert chunked.shape == (5 * 42 * 56, 3) and np.isfinite(chunked).all()
    anchored = ["--chunk-size", "3", "--overlap", "2", "--chunk-layout", "anchored"]
    assert main(base + ["--out", str(tmp_path / "anchored.ply")] + anchored) == 0
    assert read(tmp_path / "anchored.ply").shape == (5 * 42 * 56, 3)
    capsys.readouterr()
    assert main(base + ["--out", str(tmp_path / "x.ply"), "--chunk-size", "3", "--overlap", "3"]) == 2
    assert "--chunk-size 3 --overlap 3" in capsys.readouterr().err
    assert main(base + ["--out", str(tmp_path / "x.ply"), "--overlap", "2"]) == 2
    assert "--overlap and --chunk-layout need --chunk-size" in capsys.readouterr().err
    assert main(base + ["--out", str(tmp_path / "x.ply"), "--chunk-layout", "anchored"]) == 2
    assert not (tmp_path / "x.ply").exists()
