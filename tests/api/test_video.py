"""Every accepted ``video`` form decodes to RGB uint8 frames; bad inputs give clear errors."""

import logging

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from vidllm.errors import DataError
from vidllm.video import numeric_sort_key, read_frames, sample_indices


def _write_folder(folder, n=5, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{i * 5}.jpg")
    return folder


def test_numeric_sorting_and_uniform_sampling():
    names = ["10.jpg", "2.jpg", "1.jpg", "100.jpg"]
    assert sorted(names, key=numeric_sort_key) == ["1.jpg", "2.jpg", "10.jpg", "100.jpg"]
    assert sample_indices(10, 4) == [0, 3, 6, 9]
    assert sample_indices(3, 8) == [0, 1, 2]
    assert sample_indices(10, 3, "stride", stride=4) == [0, 4, 8]
    assert sample_indices(32, 8, "segment") == [2, 6, 10, 14, 18, 22, 26, 30]  # segment middles
    with pytest.raises(ValueError, match="coverage"):
        sample_indices(10, 3, "coverage")


def test_folder_scannet_folder_and_list(tmp_path):
    folder = _write_folder(tmp_path / "imgs", n=12)
    frames = read_frames(folder, num_frames=4)
    assert frames.names == ["0.jpg", "20.jpg", "35.jpg", "55.jpg"] and frames.source_count == 12
    assert all(f.dtype == np.uint8 and f.shape == (30, 40, 3) for f in frames.images)
    scene = tmp_path / "scene0000_00"
    _write_folder(scene / "color", n=3)
    assert len(read_frames(scene).images) == 3
    paths = sorted(folder.iterdir(), key=numeric_sort_key)[:2]
    assert read_frames([str(p) for p in paths]).names == ["0.jpg", "5.jpg"]


def test_pil_list_tensor_and_array_forms():
    pil = [Image.new("L", (20, 10), 128), Image.new("RGBA", (30, 15), (10, 20, 30, 40))]
    frames = read_frames(pil)
    assert [f.shape for f in frames.images] == [(10, 20, 3), (15, 30, 3)]
    assert frames.images[1][0, 0].tolist() == [10, 20, 30]
    tensor = torch.rand(3, 3, 14, 28)
    out = read_frames(tensor)
    np.testing.assert_allclose(out.images[2] / 255.0, tensor[2].permute(1, 2, 0).numpy(), atol=1 / 255)
    assert len(read_frames(np.zeros((6, 8, 8, 3), np.uint8), num_frames=2).images) == 2


def test_sixteen_bit_and_grayscale_files(tmp_path):
    depthlike = np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20
    Image.fromarray(depthlike).save(tmp_path / "0.png")
    frames = read_frames(tmp_path)
    assert frames.images[0].shape == (48, 64, 3) and frames.images[0].dtype == np.uint8
    assert frames.images[0].max() > 200  # scaled from the 16-bit range, not clipped


def test_video_file_sampling(tmp_path):
    rng = np.random.default_rng(1)
    video = (rng.random((20, 48, 64, 3)) * 255).astype(np.uint8)
    path = tmp_path / "clip.mp4"
    iio.imwrite(path, video, fps=10, codec="libx264")
    frames = read_frames(path, num_frames=5)
    assert frames.indices == [0, 5, 10, 14, 19] and frames.source_count == 20
    assert all(f.shape == (48, 64, 3) for f in frames.images)


def test_corrupt_image_skip_or_fail(tmp_path, caplog):
    folder = _write_folder(tmp_path / "imgs", n=4)
    (folder / "7.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with caplog.at_level(logging.WARNING):
        frames = read_frames(folder)
    assert len(frames.images) == 4 and frames.skipped[0].endswith("7.jpg")
    assert "7.jpg" in caplog.text
    with pytest.raises(DataError, match=r"7\.jpg.*corrupt"):
        read_frames(folder, on_corrupt="error")


def test_bad_inputs_are_clear(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_frames(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        read_frames(tmp_path / "empty")
    with pytest.raises(DataError, match="empty"):
        read_frames([])
    bogus = tmp_path / "bogus.avi"
    bogus.write_bytes(b"RIFF0000AVI garbage")
    with pytest.raises(DataError, match="bogus.avi"):
        read_frames(bogus)
    with pytest.raises(DataError, match=r"\[S, 3, H, W\]"):
        read_frames(torch.zeros(3, 14, 14))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="unsupported input"):
        read_frames(tmp_path / "notes.txt")
