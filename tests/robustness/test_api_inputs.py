"""The Python API end to end on unusual inputs: a single frame works; mixed
sizes and grayscale / RGBA / 16-bit images reach the model at its input size; empty or broken
inputs are DataErrors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import micro_config
from vidllm.api import VidLLMPipeline
from vidllm.errors import DataError
from vidllm.model import VidLLM


@pytest.fixture(scope="module")
def pipe(tokenizer):
    torch.manual_seed(0)
    return VidLLMPipeline(VidLLM(micro_config(), tokenizer))


def test_single_frame_works(pipe, tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (42, 56, 3), dtype=np.uint8)).save(tmp_path / "0.jpg")
    rec = pipe.reconstruct(tmp_path, num_frames=8)
    assert rec.depth.shape[0] == 1 and rec.extrinsics.shape == (1, 3, 4) and rec.intrinsics.shape == (1, 3, 3)
    assert np.isfinite(rec.depth).all() and np.isfinite(rec.extrinsics).all() and np.isfinite(rec.points).all()
    assert len(rec.points) > 0 and rec.frame_indices == [0]
    # (frame 0's pose is *predicted*, as in VGGT: an untrained model need not return the identity)


def test_mixed_sizes_and_modes_reach_the_model_input_size(pipe, tmp_path):
    Image.new("L", (70, 56), 90).save(tmp_path / "0.png")
    Image.new("RGBA", (140, 100), (10, 200, 30, 128)).save(tmp_path / "1.png")
    Image.fromarray(np.arange(60 * 80, dtype=np.uint16).reshape(60, 80) * 13).save(tmp_path / "2.png")
    Image.new("RGB", (50, 90), (1, 2, 3)).save(tmp_path / "3.jpg")  # portrait among landscapes
    rec = pipe.reconstruct(tmp_path, num_frames=4)
    s = 4
    assert rec.depth.shape[0] == s and rec.images.shape[0] == s and rec.intrinsics.shape == (s, 3, 3)
    h, w = rec.depth.shape[1:]
    assert h % 14 == 0 and w % 14 == 0 and rec.images.shape[1:] == (h, w, 3)
    assert np.isfinite(rec.depth).all() and np.isfinite(rec.intrinsics).all()
    assert rec.frame_names == ["0.png", "1.png", "2.png", "3.jpg"]


def test_broken_inputs_are_data_errors(pipe, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        pipe.reconstruct(tmp_path / "empty")
    with pytest.raises(DataError, match="empty"):
        pipe.reconstruct([])
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match=r"bad\.mp4"):
        pipe.reconstruct(tmp_path / "bad.mp4")


def test_zero_predicted_fov_gives_finite_intrinsics():
    from recon.geometry import pose_encoding_to_extri_intri

    enc = torch.zeros(1, 2, 9)
    enc[..., 6] = 1.0  # identity rotation, FoV 0 (an untrained camera head predicts this)
    _, intrinsics = pose_encoding_to_extri_intri(enc, (56, 70))
    assert torch.isfinite(intrinsics).all()
