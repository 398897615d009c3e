"""Bad and unusual inputs of ``vidllm.video.read_frames``: each gives RGB frames, a warning naming a
skipped file, or a ``DataError`` naming the path.

Gaps left by tests/api/test_video.py: a single frame, a folder mixing sizes and image modes,
truncated PNGs in the middle of a folder, garbage video files, and proof that a long video is
sampled without decoding every frame.
"""

from __future__ import annotations

import logging

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from vidllm.errors import DataError
from vidllm.video import read_frames


def test_single_frame_folder_file_and_list(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    Image.fromarray(np.full((12, 16, 3), 7, np.uint8)).save(folder / "0.png")
    for source in (folder, folder / "0.png", [str(folder / "0.png")]):
        frames = read_frames(source, num_frames=8)
        assert len(frames.images) == 1 and frames.indices == [0] and frames.source_count == 1
        assert frames.images[0].shape == (12, 16, 3) and frames.images[0].dtype == np.uint8
        assert (frames.images[0] == 7).all()
    single = read_frames(np.zeros((1, 4, 5, 3), np.uint8), num_frames=32)
    assert len(single.images) == 1


def test_mixed_sizes_and_modes_become_rgb_uint8(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.new("L", (20, 10), 128).save(folder / "0.png")  # grayscale
    Image.new("RGBA", (30, 15), (10, 20, 30, 0)).save(folder / "1.png")  # fully transparent RGBA
    Image.fromarray(np.full((20, 40), 65535, np.uint16)).save(folder / "2.png")  # 16-bit grayscale
    Image.new("RGB", (50, 25), (200, 100, 50)).save(folder / "3.jpg", quality=100)
    Image.new("P", (14, 14), 3).save(folder / "4.png")  # palette
    Image.fromarray(np.full((8, 9), 1000, np.uint16)).save(folder / "5.png")  # 16-bit, dark
    frames = read_frames(folder)
    assert frames.names == ["0.png", "1.png", "2.png", "3.jpg", "4.png", "5.png"]
    assert [f.shape for f in frames.images] == [
        (10, 20, 3),
        (15, 30, 3),
        (20, 40, 3),
        (25, 50, 3),
        (14, 14, 3),
        (8, 9, 3),
    ]
    assert all(f.dtype == np.uint8 for f in frames.images)
    assert frames.images[0][0, 0].tolist() == [128, 128, 128]
    assert frames.images[1][0, 0].tolist() == [10, 20, 30]  # alpha dropped, colour kept
    assert frames.images[2][0, 0].tolist() == [255, 255, 255]  # 16-bit full scale → 255, not clipped garbage
    np.testing.assert_allclose(frames.images[3][0, 0], [200, 100, 50], atol=3)
    assert frames.images[5][0, 0].tolist() == [4, 4, 4]  # 1000 / 65535 · 255 ≈ 3.9: scaled, not truncated to uint8


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_png_in_the_middle_skip_or_error(tmp_path, caplog, damage):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    good = (folder / "2.png").read_bytes()
    bad_bytes = {"garbage": b"\x89PNG\r\n\x1a\n not a png", "truncated": good[: len(good) // 2], "empty": b""}[damage]
    (folder / "2.png").write_bytes(bad_bytes)
    with caplog.at_level(logging.WARNING, logger="vidllm.video"):
        frames = read_frames(folder)
    assert frames.names == ["0.png", "1.png", "3.png", "4.png"] and frames.indices == [0, 1, 3, 4]
    assert len(frames.skipped) == 1 and frames.skipped[0].endswith("2.png")
    assert [r for r in caplog.records if r.levelno == logging.WARNING and "2.png" in r.getMessage()]
    with pytest.raises(DataError, match=r"2\.png: corrupt or unreadable image") as err:
        read_frames(folder, on_corrupt="error")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="on_corrupt"):
        read_frames(folder, on_corrupt="ignore")


def test_every_image_corrupt_is_an_error_naming_one(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.jpg").write_bytes(b"\xff\xd8 nope")
    with pytest.raises(DataError, match=r"none of the 3 sampled images could be read \(first: .*0\.jpg\)"):
        read_frames(folder)


@pytest.mark.parametrize(
    "content", [b"", b"\x00" * 4096, b"\x00\x00\x00\x18ftypmp42 then nothing useful", "audio-only"]
)
def test_garbage_or_undecodable_video_is_a_clear_data_error(tmp_path, content):
    path = tmp_path / "clip.mp4"
    if content == "audio-only":  # a valid container without a decodable video stream
        import subprocess

        import imageio_ffmpeg

        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=8000:cl=mono",
            "-t",
            "0.3",
            "-c:a",
            "aac",
            str(path),
        ]
        subprocess.run(cmd, check=True, timeout=60)
    else:
        path.write_bytes(content)
    with pytest.raises(DataError, match=r"clip\.mp4") as err:
        read_frames(path, num_frames=4)
    assert "\n" not in str(err.value)


def test_long_video_decodes_only_the_sampled_frames(tmp_path, monkeypatch):
    import imageio.v2 as imageio_v2

    n = 90
    video = np.zeros((n, 32, 48, 3), np.uint8)
    video[:, :, :, 0] = np.arange(n, dtype=np.uint8)[:, None, None] * 2  # frame i has red = 2i
    path = tmp_path / "long.mp4"
    iio.imwrite(path, video, fps=30, codec="libx264", quality=10)

    decoded: list[int] = []
    real_get_reader = imageio_v2.get_reader

    class CountingReader:
        def __init__(self, reader):
            self._reader = reader

        def get_data(self, index, **kw):
            decoded.append(index)
            return self._reader.get_data(index, **kw)

        def iter_data(self):  # decoding every frame is what must not happen
            raise AssertionError("read_frames iterated over the whole video")

        def __getattr__(self, name):
            return getattr(self._reader, name)

    monkeypatch.setattr(imageio_v2, "get_reader", lambda *a, **k: CountingReader(real_get_reader(*a, **k)))
    frames = read_frames(path, num_frames=4)
    assert frames.source_count == n
    assert frames.indices == [0, 30, 59, 89]
    assert decoded == [0, 30, 59, 89]  # one decode per sampled frame, nothing else
    red = [int(np.median(f[..., 0])) for f in frames.images]
    np.testing.assert_allclose(red, [0, 60, 118, 178], atol=12)  # the sampled frames, not the first four
