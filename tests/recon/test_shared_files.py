"""recon.files: the one atomic writer and the one frame-name sort key (re-exported by vidllm.io / vidllm.video)."""

import os
from pathlib import Path

import pytest

from recon.files import IMAGE_SUFFIXES, atomic_dir, atomic_write, numeric_sort_key


def test_atomic_write_replaces_the_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out" / "metrics.json"  # the folder is created
    with atomic_write(target, "w") as f:
        f.write("old")
    with atomic_write(target, "w") as f:
        f.write("new")
        assert target.read_text() == "old"  # untouched until the rename
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]


def test_atomic_write_error_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "scene.ply"
    target.write_text("old")
    for mode in ("w", None):
        with pytest.raises(RuntimeError):
            with atomic_write(target, mode) as handle:
                if mode is None:
                    handle.write_text("half")
                else:
                    handle.write("half")
                (tmp,) = [p for p in tmp_path.iterdir() if p.name != "scene.ply"]
                assert tmp.name.startswith(".scene.") and tmp.name.endswith(
                    ".tmp.ply"
                )  # beside the target, suffix kept
                raise RuntimeError("killed mid-write")
        assert target.read_text() == "old"
        assert [p.name for p in tmp_path.iterdir()] == ["scene.ply"]


def test_atomic_write_failed_rename_removes_the_temp(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"

    def no_rename(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="rename failed"):
        with atomic_write(target, "w") as f:
            f.write("x")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_a_missing_or_empty_folder(tmp_path):
    target = tmp_path / "gen"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("a")
    assert [p.name for p in tmp_path.iterdir()] == ["gen"] and (target / "a.txt").read_text() == "a"


def test_numeric_sort_key_orders_digit_runs_as_numbers():
    names = ["frame_10.jpg", "frame_2.jpg", "frame_1.jpg", "frame_100.jpg", "frame_02b.jpg"]
    assert sorted(names, key=numeric_sort_key) == [
        "frame_1.jpg",
        "frame_2.jpg",
        "frame_02b.jpg",
        "frame_10.jpg",
        "frame_100.jpg",
    ]
    assert sorted([Path("d/10.png"), Path("d/9.png")], key=numeric_sort_key) == [Path("d/9.png"), Path("d/10.png")]
    assert sorted(["b1.png", "a2.png"], key=numeric_sort_key) == ["a2.png", "b1.png"]  # text before numbers


def test_image_suffixes_are_the_union_of_the_former_lists():
    assert set(IMAGE_SUFFIXES) == {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def test_vidllm_reexports_the_single_implementation():
    import recon.files
    import recon.reconstruct
    import vidllm.io
    import vidllm.video

    assert vidllm.io.atomic_write is recon.files.atomic_write and vidllm.io.atomic_dir is recon.files.atomic_dir
    assert vidllm.video.numeric_sort_key is recon.files.numeric_sort_key
    assert vidllm.video.IMAGE_SUFFIXES is recon.files.IMAGE_SUFFIXES is recon.reconstruct.IMAGE_SUFFIXES


def test_list_frames_reads_every_image_suffix_in_numeric_order(tmp_path):
    from recon.reconstruct import list_frames

    for name in ("10.webp", "2.tif", "1.JPG", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_frames(tmp_path)] == ["1.JPG", "2.tif", "10.webp"]
