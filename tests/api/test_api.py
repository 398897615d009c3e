"""The Python API (vidllm/api.py, ``VidLLMPipeline`` around the model): every accepted ``video`` form, every
result field, PLY round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import micro_config


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, tokenizer):
    from vidllm.model import VidLLM

    torch.manual_seed(0)
    model = VidLLM(micro_config(**{"data.num_frames": 3}), tokenizer)
    return model.save_pretrained(tmp_path_factory.mktemp("api") / "model")


@pytest.fixture(scope="module")
def pipe(saved_model):
    import vidllm

    return vidllm.VidLLMPipeline.from_pretrained(saved_model, device="cpu")


@pytest.fixture(scope="module")
def frame_files(tmp_path_factory):
    """Five numbered frames (names that sort wrongly as strings) in a folder."""
    folder = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    for i in (1, 2, 10, 11, 3):
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _video_file(folder, frames=6):
    import imageio.v2 as imageio

    path = folder / "clip.mp4"
    rng = np.random.default_rng(1)
    with imageio.get_writer(path, fps=5, codec="libx264", macro_block_size=1) as w:
        for _ in range(frames):
            w.append_data(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
    return path


def _check_reconstruction(rec, frames=3):
    s, h, w = rec.depth.shape
    assert s == frames and h % 14 == 0 and w % 14 == 0
    n = len(rec)
    assert rec.points.shape == (n, 3) and rec.colors.shape == (n, 3) and rec.confidence.shape == (n,)
    assert n == int((rec.depth > 0).sum())
    assert rec.extrinsics.shape == (s, 3, 4) and rec.intrinsics.shape == (s, 3, 3)
    assert np.isfinite(rec.points).all() and np.isfinite(rec.scale) and rec.scale > 0
    assert rec.colors.min() >= 0 and rec.colors.max() <= 1
    rot = rec.extrinsics[:, :, :3]
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape), atol=1e-4)
    # the points are the unprojected depth: re-project frame 0's first valid pixel
    v, u = np.argwhere(rec.depth[0] > 0)[0]
    cam = rec.extrinsics[0, :, :3] @ rec.points[0] + rec.extrinsics[0, :, 3]
    np.testing.assert_allclose(cam[2], rec.depth[0, v, u], rtol=1e-3)
    np.testing.assert_allclose((rec.intrinsics[0] @ cam)[:2] / cam[2], [u, v], atol=1e-2)


def test_from_pretrained_wraps_an_eval_model_and_is_exported(pipe, saved_model):
    import vidllm

    assert isinstance(pipe, vidllm.VidLLMPipeline) and isinstance(pipe.model, vidllm.VidLLM)
    assert not pipe.model.training and pipe.compute_dtype == torch.float32 and pipe.device.type == "cpu"
    assert not hasattr(pipe.model, "reconstruct")  # the API wraps the model; it is not mixed into it
    half = vidllm.VidLLMPipeline.from_pretrained(saved_model, device="cpu", dtype="bfloat16")
    assert half.compute_dtype == torch.bfloat16 and next(half.model.parameters()).dtype == torch.float32
    with pytest.raises(ValueError, match="'bfloat' is not a torch dtype"):
        vidllm.VidLLMPipeline.from_pretrained(saved_model, device="cpu", dtype="bfloat")
    from vidllm.results import Reconstruction

    assert vidllm.Reconstruction is Reconstruction


def test_pipeline_runs_the_models_own_forward(pipe, frame_files):
    """The pipeline adds no computation of its own: its reconstruction is the model's forward on the loaded frames."""
    from vidllm.results import reconstruction_from_outputs

    images, frames = pipe.load_video(frame_files)
    with torch.no_grad():
        direct = reconstruction_from_outputs(pipe.model(images[None]), images, 0, frames)
    rec = pipe.reconstruct(frame_files)
    for field in ("points", "colors", "confidence", "depth", "extrinsics", "intrinsics", "images"):
        np.testing.assert_array_equal(getattr(rec, field), getattr(direct, field), err_msg=field)
    assert rec.frame_names == direct.frame_names and rec.scale == direct.scale


def test_reconstruct_every_video_form(pipe, frame_files, tmp_path):
    pil = [Image.open(p).convert("RGB") for p in sorted(frame_files.iterdir())]
    forms = {
        "folder": frame_files,
        "paths": sorted(frame_files.iterdir()),
        "pil": pil,
        "tensor": torch.rand(4, 3, 60, 80),
        "array": np.random.default_rng(0).integers(0, 255, (4, 60, 80, 3), dtype=np.uint8),
        "mp4": _video_file(tmp_path),
    }
    for name, video in forms.items():
        rec = pipe.reconstruct(video)
        _check_reconstruction(rec)
        assert len(rec.frame_indices) == 3, name


def test_scannet_scene_folder(pipe, synthetic_root):
    scene = next(p for p in sorted((synthetic_root / "scans").iterdir()) if p.is_dir())
    rec = pipe.reconstruct(scene)
    _check_reconstruction(rec)
    assert all(n.endswith(".jpg") for n in rec.frame_names)


def test_frames_sorted_numerically_and_mixed_sizes(pipe, tmp_path):
    from vidllm.api import frames_to_tensor
    from vidllm.video import read_frames

    frames = read_frames(
        [np.zeros((60, 80, 3), np.uint8), np.zeros((120, 90, 3), np.uint8), np.zeros((30, 30), np.uint8)]
    )
    images = frames_to_tensor(frames, 56)
    assert images.shape == (3, 3, 56, 70)  # every frame brought to the first frame's output size
    folder = tmp_path / "f"
    folder.mkdir()
    for i in (10, 2, 1):
        Image.fromarray(np.full((60, 80, 3), i, np.uint8)).save(folder / f"{i}.png")
    rec = pipe.reconstruct(folder, num_frames=3)
    assert rec.frame_names == ["1.png", "2.png", "10.png"]
    assert [int(rec.images[i, 0, 0, 0]) for i in range(3)] == [1, 2, 10]


def test_answer_and_ground_fields(pipe, frame_files):
    ans = pipe.answer(frame_files, "what color is the chair")
    assert isinstance(ans.text, str)
    assert ans.boxes.ndim == 2 and ans.boxes.shape[1] == 6 and ans.boxes.shape[0] >= 1
    assert ans.scores.shape == (ans.boxes.shape[0],)
    _check_reconstruction(ans.point_cloud)
    many = pipe.answer_many(frame_files, ["what color is the chair", "how many chairs are there"])
    assert len(many) == 2 and many[0].text == ans.text  # the batched path agrees with the single one

    g = pipe.ground(frame_files, "the table next to the bed")
    assert g.box.shape == (6,) and g.proposal_index == -1 and g.boxes.shape[1] == 6
    proposals = np.array([[0, 0, 2, 0.5, 0.5, 0.5], [1, 0, 3, 0.4, 0.4, 0.4]], np.float32)
    gp = pipe.ground(frame_files, "the table next to the bed", proposals=proposals)
    assert gp.proposal_index in (-1, 0, 1)  # -1: the head's "no object" choice
    np.testing.assert_allclose(gp.box, proposals[gp.proposal_index] if gp.proposal_index >= 0 else g.box, atol=1e-5)
    batch = pipe.ground_batch([frame_files, frame_files], ["the table next to the bed"] * 2, [proposals, None])
    assert batch[0].proposal_index == gp.proposal_index and batch[1].proposal_index == -1


def test_reconstruct_batch_matches_single(pipe, frame_files):
    single = pipe.reconstruct(frame_files)
    both = pipe.reconstruct_batch([frame_files, frame_files])
    np.testing.assert_allclose(both[1].depth, single.depth, rtol=1e-4, atol=1e-5)


def test_ply_round_trip_and_filters(pipe, frame_files, tmp_path):
    import open3d as o3d

    rec = pipe.reconstruct(frame_files)
    path = rec.save(tmp_path / "cloud.ply")
    pcd = o3d.io.read_point_cloud(str(path))
    assert len(pcd.points) == len(rec) and pcd.has_colors()
    np.testing.assert_allclose(np.asarray(pcd.colors), np.clip(rec.colors, 0, 1), atol=1 / 255 + 1e-6)
    assert len(rec.to_open3d().points) == len(rec)
    half = rec.filter_confidence(0.5)
    assert 0 < len(half) < len(rec) and half.confidence.min() >= np.quantile(rec.confidence, 0.5)
    down = rec.voxel_down_sample(0.5)
    keys = np.unique(np.floor(rec.points / 0.5).astype(int), axis=0)
    assert len(down) == len(keys)
    cams = rec.cameras_dict()
    assert len(cams["frames"]) == 3
    np.testing.assert_allclose(cams["frames"][1]["center"], rec.camera_centers[1])


def test_bad_inputs_are_clear(pipe, tmp_path):
    from vidllm.errors import DataError

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        pipe.reconstruct(tmp_path / "empty")
    with pytest.raises(DataError, match="not found"):
        pipe.reconstruct(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="2 questions but 1 situations"):
        pipe.answer_many(tmp_path, ["a", "b"], ["x"])


def test_reconstruct_in_chunks_matches_chunked_forward(pipe):
    """``chunk_size`` runs :func:`recon.chunked.chunked_forward` over the model's geometry forward with the model's
    real-scale alignment; a chunk as long as the video is the plain forward."""
    from recon.chunked import chunked_forward
    from vidllm.results import reconstruction_from_outputs

    video = torch.rand(6, 3, 60, 80, generator=torch.Generator().manual_seed(0))
    full = pipe.reconstruct(video, num_frames=6)
    same = pipe.reconstruct(video, num_frames=6, chunk_size=6, overlap=2)
    np.testing.assert_array_equal(same.depth, full.depth)

    rec = pipe.reconstruct(video, num_frames=6, chunk_size=4, overlap=2, chunk_layout="anchored")
    images, frames = pipe.load_video(video, 6)
    alignment = pipe.config.metric_depth.alignment
    out = chunked_forward(pipe.forward_geometry, images[None], 4, 2, alignment, "anchored")
    ref = reconstruction_from_outputs(out, images, 0, frames)
    assert len(rec.frame_indices) == 6 and np.isfinite(rec.points).all()
    np.testing.assert_allclose(rec.depth, ref.depth, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rec.points, ref.points, rtol=1e-5, atol=1e-5)
    assert not np.allclose(rec.depth, full.depth)  # the chunks really were separate forwards
    batch = pipe.reconstruct_batch([video, video], num_frames=6, chunk_size=4)  # overlap: chunk_size // 4
    np.testing.assert_allclose(batch[0].depth, batch[1].depth, rtol=1e-5, atol=1e-6)


def test_bad_chunk_settings_fail_before_decoding(pipe, tmp_path):
    missing = tmp_path / "missing.mp4"  # never read: the settings are checked first
    with pytest.raises(ValueError, match="need chunk_size"):
        pipe.reconstruct(missing, overlap=2)
    with pytest.raises(ValueError, match="need chunk_size"):
        pipe.reconstruct(missing, chunk_layout="anchored")
    with pytest.raises(ValueError, match="overlap must be an integer with 1 <= overlap < chunk_size"):
        pipe.reconstruct(missing, chunk_size=4, overlap=4)
    with pytest.raises(ValueError, match="chunk layout must be one of"):
        pipe.reconstruct(missing, chunk_size=4, chunk_layout="strided")


def test_compile_option_routes_the_geometry_forward(saved_model, monkeypatch):
    """``compile`` wraps the model with :func:`recon.compiled.compile_for_inference` (its own test checks the
    compiled outputs); ``forward_geometry`` and ``reconstruct`` then run through the wrapper."""
    import vidllm.api as api

    calls = []

    def spy(module, mode):
        calls.append(mode)

        def run(images):
            calls.append(tuple(images.shape))
            with torch.no_grad():
                return module(images)

        return run

    monkeypatch.setattr(api, "compile_for_inference", spy)
    pipe = api.VidLLMPipeline.from_pretrained(saved_model, device="cpu", compile="default")
    assert calls == ["default"] and "compile='default'" in repr(pipe)
    rec = pipe.reconstruct(torch.rand(3, 3, 60, 80))
    assert len(calls) == 2 and len(calls[1]) == 5 and len(rec.frame_indices) == 3
    with pytest.raises(ValueError, match=r"compile = 'fast'; expected one of \['none', 'default', 'max-autotune'\]"):
        api.VidLLMPipeline.from_pretrained(saved_model / "missing", compile="fast")  # checked before reading
