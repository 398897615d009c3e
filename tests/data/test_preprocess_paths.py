"""One image preprocessing: training clips, evaluation clips, the API (and the export tool through it)
feed the model the same pixels for the same frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import micro_config
from vidllm.api import VidLLMPipeline, frames_to_tensor
from vidllm.data.clip import frame_resize_hw, load_clip, output_geometry, preprocess_frames, resize_crop_images
from vidllm.data.dataset import VidLLMDataset
from vidllm.evaluation.clips import SceneClips, eval_data_config
from vidllm.video import read_frames


def _rule_of_training(img: np.ndarray, image_size: int, side: str) -> torch.Tensor:
    """The documented resize (round(side · scale), bilinear antialiased) and centre crop, written out."""
    rh, rw, top, left, oh, ow = output_geometry(img.shape[0], img.shape[1], image_size, side)
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    return resize_crop_images(t, (rh, rw), (top, left, oh, ow))[0]


@pytest.mark.parametrize(
    "hw,image_size,side,resized", [((168, 224), 112, "shorter", (112, 149)), ((480, 640), 518, "longer", (388, 518))]
)
def test_resize_of_the_reported_cases(hw, image_size, side, resized):
    """The two frames of the report: 224×168 at 112 and ScanNet 640×480 at 518 ('longer') resize alike on every path."""
    rh, rw, _, _, oh, ow = output_geometry(*hw, image_size, side)
    assert (rh, rw) == resized
    assert frame_resize_hw(*hw, (oh, ow), image_size, side) == resized
    img = np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)
    assert torch.equal(frames_to_tensor([img], image_size, side)[0], _rule_of_training(img, image_size, side))


def test_mixed_sizes_cover_the_first_frame():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 256, (168, 224, 3), dtype=np.uint8), rng.integers(0, 256, (240, 240, 3), dtype=np.uint8)
    out = preprocess_frames([a, b], 112, "shorter")
    assert out.shape == (2, 3, 112, 140)
    assert torch.equal(out[0], _rule_of_training(a, 112, "shorter"))  # the first frame's own rule
    assert frame_resize_hw(240, 240, (112, 140), 112, "shorter") == (140, 140)  # the other frame covers 112×140


@pytest.mark.parametrize("image_size,side", [(70, "shorter"), (95, "longer"), (56, "shorter")])
def test_same_pixels_on_every_path(synthetic_root, tokenizer, image_size, side):
    """112×84 frames at sizes whose resize is fractional (93.3, 71.25): rounding is where paths used to differ."""
    cfg = micro_config(
        **{
            "data.root": str(synthetic_root),
            "data.image_size": image_size,
            "data.resize_side": side,
            "data.num_frames": 3,
        }
    )
    # training: the dataset's clip
    dataset = VidLLMDataset(cfg.data, "val", tasks=["recon"])
    scene_id = dataset.samples[0][1]  # a 'recon' sample is its scene id
    scene = dataset.scene(scene_id)
    indices = dataset.frame_indices(scene, 0)
    train = load_clip(scene, indices, image_size, side)
    paths = [scene.color_path(f) for f in train["frame_ids"].tolist()]
    # evaluation: the runners' clip of the same scene
    evaluation = SceneClips(eval_data_config(cfg.data, synthetic_root), "val", ["recon"]).clip(scene_id)
    # API: decoded files → frames_to_tensor; the pipeline's load_video (what export --checkpoint runs)
    api = frames_to_tensor(read_frames(paths), image_size, side)
    from vidllm.model import VidLLM

    loaded, _ = VidLLMPipeline(VidLLM(cfg, tokenizer)).load_video(paths)
    assert train["images"].shape[-2:] == output_geometry(84, 112, image_size, side)[-2:]
    for name, images in (("evaluation", evaluation["images"]), ("api", api), ("load_video", loaded)):
        assert torch.equal(images.cpu(), train["images"]), f"{name} pixels differ from training"
