"""``vidllm export-pointcloud``: a saved Vid-LLM model or a plain VGGT checkpoint → PLY, cameras JSON, preview
(also the command line of :mod:`recon.reconstruct`, which has none of its own)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vidllm.cli import main

pytestmark = pytest.mark.usefixtures("cli_logging")


def test_export_pointcloud_round_trip(model_dir, synthetic_root, tmp_path, capsys):
    import open3d as o3d

    scene = sorted((synthetic_root / "scans").iterdir())[0]
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"pred": [[0, 0, 2, 0.5, 0.5, 0.5]], "gt": [[0.1, 0, 2, 0.5, 0.5, 0.5]]}))
    out = tmp_path / "o" / "scene.ply"
    assert (
        main(
            [
                "export-pointcloud",
                "--checkpoint",
                str(model_dir),
                "--video",
                str(scene),
                "--out",
                str(out),
                "--cameras",
                "--conf-threshold",
                "0.2",
                "--boxes",
                str(boxes),
            ]
        )
        == 0
    )
    reported = int(capsys.readouterr().out.split("wrote ")[1].split(" points")[0])
    pcd = o3d.io.read_point_cloud(str(out))
    assert len(pcd.points) == reported > 0 and pcd.has_colors()
    cams = json.loads(out.with_suffix(".cameras.json").read_text())
    assert len(cams["frames"]) == 3 and np.asarray(cams["frames"][1]["intrinsic"]).shape == (3, 3)
    assert len(o3d.io.read_line_set(str(out.with_suffix(".cameras.ply"))).lines) == 3 * 8
    assert out.with_suffix(".png").stat().st_size > 1000
    assert not [p for p in out.parent.iterdir() if ".tmp" in p.name]  # nothing half-written left behind


def test_export_pointcloud_chunked(model_dir, synthetic_root, tmp_path, capsys):
    """--chunk-size with a Vid-LLM checkpoint: all sampled frames, metric; one chunk equals one forward."""
    import open3d as o3d

    scene = sorted((synthetic_root / "scans").iterdir())[0]
    base = ["export-pointcloud", "--checkpoint", str(model_dir), "--video", str(scene), "--max-frames", "6"]
    assert main(base + ["--out", str(tmp_path / "full.ply")]) == 0
    assert main(base + ["--out", str(tmp_path / "one.ply"), "--chunk-size", "6", "--overlap", "2"]) == 0
    read = lambda p: np.asarray(o3d.io.read_point_cloud(str(p)).points)  # noqa: E731
    np.testing.assert_array_equal(read(tmp_path / "one.ply"), read(tmp_path / "full.ply"))
    full = json.loads((tmp_path / "full.cameras.json").read_text())
    assert json.loads((tmp_path / "one.cameras.json").read_text()) == full
    assert main(base + ["--out", str(tmp_path / "c.ply"), "--chunk-size", "4", "--overlap", "2"]) == 0
    cams = json.loads((tmp_path / "c.cameras.json").read_text())
    assert [f["index"] for f in cams["frames"]] == [f["index"] for f in full["frames"]]
    assert cams["scale"] > 0 and np.isfinite([f["extrinsic_w2c"] for f in cams["frames"]]).all()
    assert len(read(tmp_path / "c.ply")) > 0
    anchored = ["--chunk-size", "4", "--overlap", "2", "--chunk-layout", "anchored"]
    assert main(base + ["--out", str(tmp_path / "a.ply")] + anchored) == 0
    assert len(json.loads((tmp_path / "a.cameras.json").read_text())["frames"]) == 6
    capsys.readouterr()
    assert main(base + ["--out", str(tmp_path / "x.ply"), "--chunk-size", "4", "--overlap", "4"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--overlap 4" in err and len(err.splitlines()) == 1 and not (tmp_path / "x.ply").exists()
    assert main(base + ["--out", str(tmp_path / "x.ply"), "--overlap", "2"]) == 1
    assert "--overlap and --chunk-layout need --chunk-size" in capsys.readouterr().err
    assert main(base + ["--out", str(tmp_path / "x.ply"), "--chunk-layout", "anchored"]) == 1
    assert "need --chunk-size" in capsys.readouterr().err and not (tmp_path / "x.ply").exists()


def test_vggt_checkpoint_export(teacher_files, tmp_path, capsys):
    import open3d as o3d

    frames = tmp_path / "frames"
    frames.mkdir()
    from PIL import Image

    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (42, 56, 3), dtype=np.uint8)).save(
            frames / f"{i}.png"
        )
    out = tmp_path / "v.ply"
    code = main(
        [
            "export-pointcloud",
            "--vggt",
            str(teacher_files / "model.pt"),
            "--video",
            str(frames),
            "--out",
            str(out),
            "--image-size",
            "56",
            "--override",
            "depth_head_layers=[0,1,2,3]",
            "--override",
            "num_heads=2",
            "--override",
            "camera_num_heads=2",
            "--override",
            "encoder_num_heads=2",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert len(o3d.io.read_point_cloud(str(out)).points) > 0


def _vggt_frames(tmp_path, count=5):
    """A VGGT-layout checkpoint (tests.recon.vggt_reference, 4 heads) and ``count`` frames of 60×45."""
    from PIL import Image

    from tests.recon.vggt_reference import make_vggt_state_dict

    ckpt = tmp_path / "model.pt"
    torch.save(make_vggt_state_dict(), ckpt)
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (45, 60, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    overrides = ["num_heads=4", "camera_num_heads=4", "depth_head_layers=[0,1,1,2]", "encoder_num_heads=4"]
    args = ["export-pointcloud", "--vggt", str(ckpt), "--video", str(folder), "--image-size", "56", "--device", "cpu"]
    for o in overrides:
        args += ["--override", o]
    return args


def test_vggt_frames_folder_chunked_and_quantile_filter(tmp_path, capsys):
    """What ``python -m recon.reconstruct --vggt M --frames DIR`` did: every frame of the folder, chunked or not
    (a chunk as long as the video is the one-forward output); ``--conf-threshold`` is a quantile here."""
    import open3d as o3d

    base = _vggt_frames(tmp_path)
    read = lambda p: np.asarray(o3d.io.read_point_cloud(str(p)).points)  # noqa: E731
    assert main(base + ["--out", str(tmp_path / "full.ply")]) == 0
    full = read(tmp_path / "full.ply")
    assert full.shape == (5 * 42 * 56, 3) and np.isfinite(full).all()
    assert main(base + ["--out", str(tmp_path / "one.ply"), "--chunk-size", "8", "--overlap", "2"]) == 0
    np.testing.assert_array_equal(read(tmp_path / "one.ply"), full)
    assert main(base + ["--out", str(tmp_path / "chunks.ply"), "--chunk-size", "3", "--overlap", "1"]) == 0
    assert read(tmp_path / "chunks.ply").shape == (5 * 42 * 56, 3)
    anchored = ["--chunk-size", "3", "--overlap", "2", "--chunk-layout", "anchored"]
    assert main(base + ["--out", str(tmp_path / "anchored.ply"), *anchored]) == 0
    assert read(tmp_path / "anchored.ply").shape == (5 * 42 * 56, 3)
    assert main(base + ["--out", str(tmp_path / "half.ply"), "--conf-threshold", "0.5"]) == 0
    assert 0 < len(read(tmp_path / "half.ply")) < len(full)
    capsys.readouterr()
    assert main(base + ["--out", str(tmp_path / "x.ply"), "--conf-threshold", "1.5"]) == 1
    assert "quantile must be in [0, 1)" in capsys.readouterr().err and not (tmp_path / "x.ply").exists()


def test_missing_inputs_are_one_line_naming_the_path(tmp_path, capsys, model_dir):
    """README "bad input": a missing checkpoint or video → one line naming it, exit 1, no output files."""
    (tmp_path / "empty").mkdir()
    cases = [
        (["--checkpoint", str(tmp_path / "no_model"), "--video", str(tmp_path / "empty")], "no_model"),
        (["--vggt", str(tmp_path / "no_vggt.pt"), "--video", str(tmp_path / "empty")], "no_vggt.pt"),
        (["--checkpoint", str(model_dir), "--video", str(tmp_path / "no_video.mp4")], "no_video.mp4"),
        (["--checkpoint", str(model_dir), "--video", str(tmp_path / "empty")], "no images"),
    ]
    for argv, named in cases:
        assert main(["export-pointcloud", *argv, "--out", str(tmp_path / "o" / "x.ply"), "--device", "cpu"]) == 1
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if "error" in line.lower()]
        assert "Traceback" not in err and len(lines) == 1 and named in lines[0], err[-2000:]
        assert lines[0].startswith("vidllm export-pointcloud: error: ")
        assert not (tmp_path / "o").exists()


def test_skip_invalid_poses_reads_the_frames_with_a_pose(synthetic_root):
    """``--skip-invalid-poses``: the scene's colour frames whose pose file is finite, in frame order."""
    from vidllm.commands.export_pointcloud_cmd import build_parser, video_input
    from vidllm.data.scannet import load_scannet_scene

    scene_dir = sorted((synthetic_root / "scans").iterdir())[0]
    scene = load_scannet_scene(scene_dir, with_objects=False)
    assert not scene.valid.all()  # the fixture has a frame with a lost pose
    argv = ["--checkpoint", "m", "--video", str(scene_dir), "--out", "x.ply"]
    assert video_input(build_parser().parse_args(argv)) == str(scene_dir)
    frames = video_input(build_parser().parse_args([*argv, "--skip-invalid-poses"]))
    assert frames == [scene.color_path(f) for f, ok in zip(scene.frame_ids, scene.valid) if ok]
    assert len(frames) == int(scene.valid.sum()) and all(p.is_file() for p in frames)


def test_compile_option_wraps_the_vggt_forward(tmp_path, monkeypatch):
    """``--compile MODE`` runs the forward through :func:`recon.compiled.compile_for_inference` (whose own test
    checks the compiled outputs); ``none`` gives the same cloud as no option."""
    import open3d as o3d

    import vidllm.commands.export_pointcloud_cmd as cmd

    modes = []
    real = cmd.compile_for_inference

    def spy(module, mode):
        modes.append(mode)
        return real(module, "none")

    monkeypatch.setattr(cmd, "compile_for_inference", spy)
    base = _vggt_frames(tmp_path)
    assert main(base + ["--out", str(tmp_path / "a.ply"), "--compile", "default"]) == 0
    assert main(base + ["--out", str(tmp_path / "b.ply")]) == 0
    assert modes == ["default", "none"]
    read = lambda p: np.asarray(o3d.io.read_point_cloud(str(p)).points)  # noqa: E731
    np.testing.assert_array_equal(read(tmp_path / "a.ply"), read(tmp_path / "b.ply"))
    with pytest.raises(SystemExit):
        main(base + ["--out", str(tmp_path / "c.ply"), "--compile", "fast"])


def test_checkpoint_override_switches_token_merging(model_dir, synthetic_root, tmp_path, capsys):
    """``--override recon.aggregator.global_merge_ratio=R`` with ``--checkpoint`` rebuilds the saved model with that
    setting (same weights): the cloud changes with R > 0, and an unknown key is one line naming it."""
    import open3d as o3d

    scene = str(sorted((synthetic_root / "scans").iterdir())[0])
    read = lambda p: np.asarray(o3d.io.read_point_cloud(str(p)).points)  # noqa: E731
    base = ["export-pointcloud", "--checkpoint", str(model_dir), "--video", scene]
    assert main(base + ["--out", str(tmp_path / "exact.ply")]) == 0
    assert (
        main(base + ["--out", str(tmp_path / "zero.ply"), "--override", "recon.aggregator.global_merge_ratio=0"]) == 0
    )
    np.testing.assert_array_equal(read(tmp_path / "zero.ply"), read(tmp_path / "exact.ply"))
    merged = ["--override", "recon.aggregator.global_merge_ratio=0.5"]
    assert main(base + ["--out", str(tmp_path / "merged.ply"), *merged]) == 0
    a, b = read(tmp_path / "merged.ply"), read(tmp_path / "exact.ply")
    assert a.shape == b.shape and not np.allclose(a, b)
    capsys.readouterr()
    assert main(base + ["--out", str(tmp_path / "bad.ply"), "--override", "recon.aggregator.merge_ratio=0.5"]) == 1
    assert "merge_ratio" in capsys.readouterr().err and not (tmp_path / "bad.ply").exists()
