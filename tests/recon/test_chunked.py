"""recon.chunked: chunk layout, Sim(3) chaining against ground truth, and equality with the full forward."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from recon.alignment import real_scale_alignment
from recon.chunked import Chunk, check_chunking, chunk_plan, chunk_spans, chunked_forward
from recon.config import (
    AlignmentConfig,
)
from recon.geometry import closed_form_inverse_se3, depth_to_world_points, to_homogeneous
from recon.model import ReconstructionModel
from tests.helpers import micro_config, tiny_recon_model

H, W = 6, 8


# ------------------------------------------------------------------------------------------ layout
@pytest.mark.parametrize(
    "s,size,overlap,expected",
    [
        (5, 8, 2, [(0, 5)]),  # fits one chunk
        (8, 8, 2, [(0, 8)]),  # exactly one chunk
        (9, 8, 2, [(0, 8), (1, 9)]),  # one frame more: the last chunk moves back (shares 7)
        (10, 4, 1, [(0, 4), (3, 7), (6, 10)]),  # exact tiling
        (11, 4, 1, [(0, 4), (3, 7), (6, 10), (7, 11)]),
        (6, 2, 1, [(0, 2), (1, 3), (2, 4), (3, 5), (4, 6)]),  # smallest chunks
        (6, 4, 3, [(0, 4), (1, 5), (2, 6)]),  # overlap = chunk_size - 1
        (1, 2, 1, [(0, 1)]),
    ],
)
def test_chunk_spans(s, size, overlap, expected):
    spans = chunk_spans(s, size, overlap)
    assert spans == expected
    assert chunk_plan(s, size, overlap) == [Chunk(tuple(range(a, b)), k - 1) for k, (a, b) in enumerate(spans)]
    covered = sorted({f for a, b in spans for f in range(a, b)})
    assert covered == list(range(s))
    assert all(b - a == min(size, s) for a, b in spans)
    assert all(spans[i][1] - spans[i + 1][0] >= overlap for i in range(len(spans) - 1))


@pytest.mark.parametrize(
    "s,size,overlap", [(256, 32, 8), (11, 4, 1), (12, 5, 2), (9, 8, 2), (7, 3, 2), (40, 10, 10 - 1)]
)
def test_anchored_plan(s, size, overlap):
    plan = chunk_plan(s, size, overlap, "anchored")
    anchors = sorted(set.intersection(*(set(c.frames) for c in plan)))
    expected = sorted({round(i * (s - 1) / max(overlap - 1, 1)) for i in range(overlap)})
    assert anchors == expected and anchors[0] == 0 and (overlap == 1 or anchors[-1] == s - 1)
    assert all(c.frames[0] == 0 and list(c.frames) == sorted(c.frames) for c in plan)  # model frame = camera 0
    assert all(len(c.frames) <= size for c in plan) and [c.reference for c in plan] == [-1] + [0] * (len(plan) - 1)
    others = [f for c in plan for f in c.frames if f not in anchors]
    assert sorted(others) == sorted(set(range(s)) - set(anchors))  # every other frame in exactly one chunk
    assert len(plan) == -(-(s - len(anchors)) // (size - overlap))
    assert chunk_plan(5, 8, 2, "anchored") == [Chunk(tuple(range(5)), -1)]  # fits one chunk


@pytest.mark.parametrize(
    "size,overlap,match",
    [
        (1, 0, "chunk_size must be an integer >= 2"),
        (8, 8, r"1 <= overlap < chunk_size \(8\)"),
        (8, 9, "overlap"),
        (8, 0, "overlap"),
        (8.0, 2, "chunk_size"),
        (8, True, "overlap"),
    ],
)
def test_bad_settings_have_clear_errors(size, overlap, match):
    with pytest.raises(ValueError, match=match):
        check_chunking(size, overlap)
    with pytest.raises(ValueError, match=match):
        chunked_forward(lambda x: {}, torch.zeros(1, 4, 3, H, W), size, overlap)


def test_bad_images_and_outputs_have_clear_errors():
    with pytest.raises(ValueError, match=r"\[B, S, 3, H, W\]"):
        chunked_forward(lambda x: {}, torch.zeros(4, 1, H, W), 4, 1)
    with pytest.raises(ValueError, match="returned no"):
        chunked_forward(lambda x: {"depth": x[:, :, 0]}, torch.zeros(1, 4, 3, H, W), 4, 1)
    with pytest.raises(ValueError, match="at least 1 frame"):
        chunk_spans(0, 4, 1)
    with pytest.raises(ValueError, match=r"layout must be one of \('consecutive', 'anchored'\), got 'zigzag'"):
        chunked_forward(lambda x: {}, torch.zeros(1, 4, 3, H, W), 4, 1, layout="zigzag")


# ------------------------------------------------------------------------------------------ oracle
class Oracle:
    """A 'model' returning the ground truth of the frames it is given, in the chunk's own frame:
    world = the chunk's first camera, units scaled by ``λ = 0.5 + 0.1·k`` for its ``k``-th call (a
    different scale per chunk, as an independent forward has). The frame index is read from pixel (0, 0)."""

    def __init__(self, s: int, seed: int = 0, outliers: bool = False):
        rng = np.random.default_rng(seed)
        rots = torch.from_numpy(Rotation.random(s, random_state=seed).as_matrix())
        self.ext = torch.cat([rots, torch.from_numpy(rng.normal(size=(s, 3, 1)))], -1)  # world→camera
        self.k = torch.tensor([[9.0, 0, W / 2], [0, 8.0, H / 2], [0, 0, 1]], dtype=torch.float64).expand(s, 3, 3)
        self.depth = torch.from_numpy(rng.uniform(1.0, 3.0, size=(s, H, W)))
        self.metric = 2.0 * self.depth  # 'metres'
        self.conf = torch.from_numpy(rng.uniform(2.0, 4.0, size=(s, H, W)))
        self.outliers = outliers
        self.calls: list[list[int]] = []

    def images(self) -> torch.Tensor:
        img = torch.zeros(1, self.depth.shape[0], 3, H, W, dtype=torch.float64)
        img[0, :, 0, 0, 0] = torch.arange(self.depth.shape[0]) / 1000
        return img

    def truth(self, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Extrinsics ``[S, 3, 4]`` and depth ``[S, H, W]`` in frame 0's camera, units × ``lam``."""
        ext = (to_homogeneous(self.ext) @ closed_form_inverse_se3(to_homogeneous(self.ext[0])))[:, :3]
        return torch.cat([ext[..., :3], lam * ext[..., 3:]], -1), lam * self.depth

    def __call__(self, images: torch.Tensor) -> dict:
        idx = (images[0, :, 0, 0, 0] * 1000).round().long()
        self.calls.append(idx.tolist())
        lam = 0.5 + 0.1 * (len(self.calls) - 1)
        ext = (to_homogeneous(self.ext[idx]) @ closed_form_inverse_se3(to_homogeneous(self.ext[idx[0]])))[:, :3]
        depth, conf = lam * self.depth[idx], self.conf[idx].clone()
        if self.outliers:  # a quarter of each frame's pixels wrong, with low confidence
            depth[:, ::2, ::2] *= 3.0
            conf[:, ::2, ::2] = 1.1
        return {
            "depth": depth[None],
            "depth_conf": conf[None],
            "extrinsic": torch.cat([ext[..., :3], lam * ext[..., 3:]], -1)[None],
            "intrinsic": self.k[idx][None],
            "metric_depth": self.metric[idx][None],
            "scale": torch.ones(1, dtype=torch.float64),
            "geometry_tokens": torch.zeros(1, len(idx), 4),  # dropped by the merge
        }


@pytest.mark.parametrize(
    "s,size,overlap,layout",
    [
        (11, 4, 1, "consecutive"),
        (12, 5, 2, "consecutive"),
        (9, 8, 2, "consecutive"),
        (6, 2, 1, "consecutive"),
        (11, 4, 1, "anchored"),
        (12, 5, 2, "anchored"),
        (13, 6, 3, "anchored"),
    ],
)
def test_chunks_are_chained_to_the_first_camera(s, size, overlap, layout):
    oracle = Oracle(s, seed=s)
    out = chunked_forward(oracle, oracle.images(), size, overlap, AlignmentConfig(), layout, conf_quantile=0.0)
    plan = chunk_plan(s, size, overlap, layout)
    assert oracle.calls == [list(c.frames) for c in plan]  # one forward per chunk, on its frames
    ext, depth = oracle.truth(0.5)  # the first chunk's scale
    torch.testing.assert_close(out["extrinsic"][0], ext, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(out["depth"][0], depth, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(out["intrinsic"][0], oracle.k)
    torch.testing.assert_close(out["depth_conf"][0], oracle.conf)
    # the real-scale alignment on the chained video recovers metres: relative·s = metric
    assert float(out["scale"][0]) == pytest.approx(4.0, rel=1e-9)  # metric = 2·depth = 4·(0.5·depth)
    torch.testing.assert_close(out["depth_metric"][0], oracle.metric, atol=1e-9, rtol=1e-9)
    ext_m, _ = oracle.truth(2.0)
    torch.testing.assert_close(out["extrinsic_metric"][0], ext_m, atol=1e-9, rtol=1e-9)
    pts = depth_to_world_points(out["depth_metric"][0], out["extrinsic_metric"][0], out["intrinsic"][0])
    torch.testing.assert_close(pts, depth_to_world_points(oracle.metric, ext_m, oracle.k), atol=1e-9, rtol=1e-9)
    assert "geometry_tokens" not in out
    # each frame comes from the first chunk holding it
    first = [next(k for k, c in enumerate(plan) if f in c.frames) for f in range(s)]
    assert out["chunk_frames"].tolist() == first
    # chunk k's Sim(3) maps its frame to the first camera's: scale λ_0 / λ_k
    scales = out["chunk_sim3"][0, :, :3, :3].det().pow(1 / 3)
    expected = torch.tensor([0.5 / (0.5 + 0.1 * k) for k in range(len(plan))], dtype=torch.float64)
    torch.testing.assert_close(scales, expected)


def test_float32_chain_within_1e5_and_low_confidence_outliers_ignored():
    oracle = Oracle(14, seed=3, outliers=True)
    out = chunked_forward(
        lambda x: {k: v.float() for k, v in oracle(x.double()).items()},
        oracle.images().float(),
        6,
        2,
        AlignmentConfig(),
    )
    ext, _ = oracle.truth(0.5)
    assert out["extrinsic"].dtype == torch.float32
    torch.testing.assert_close(out["extrinsic"][0].double(), ext, atol=1e-5, rtol=1e-5)
    clean = (torch.arange(H)[:, None] % 2 == 1) | (torch.arange(W)[None] % 2 == 1)
    torch.testing.assert_close(out["depth"][0, :, clean].double(), 0.5 * oracle.depth[:, clean], atol=1e-5, rtol=1e-5)


def test_metric_depth_needs_the_alignment_settings_and_disabled_alignment_gives_scale_one():
    oracle = Oracle(6)
    with pytest.raises(ValueError, match="alignment"):
        chunked_forward(oracle, oracle.images(), 4, 1)
    out = chunked_forward(oracle, oracle.images(), 4, 1, AlignmentConfig(enabled=False))
    assert out["scale"].tolist() == [1.0] and "frame_scales" not in out
    torch.testing.assert_close(out["depth_metric"], out["depth"])


# ------------------------------------------------------------------------------------------ real models
def _tiny_recon() -> ReconstructionModel:
    return tiny_recon_model().eval()


@pytest.mark.parametrize("size", [5, 9])
def test_one_chunk_equals_the_full_forward_exactly(size):
    model = _tiny_recon()
    images = torch.rand(2, 5, 3, 28, 42, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(images)
    out = chunked_forward(model, images, size, 2)
    for key in ("depth", "depth_conf", "extrinsic", "intrinsic"):
        assert torch.equal(out[key], full[key]), key
    assert "scale" not in out and out["chunk_sim3"].shape == (2, 1, 4, 4)


def test_chunked_random_model_keeps_the_first_chunk_and_maps_the_rest():
    model = _tiny_recon()
    images = torch.rand(1, 7, 3, 28, 42, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        first = model(images[:, :3])
        last = model(images[:, 4:])
    out = chunked_forward(model, images, 3, 1, conf_quantile=0.0)
    assert out["depth"].shape == (1, 7, 28, 42) and out["extrinsic"].shape == (1, 7, 3, 4)
    for key in ("depth", "depth_conf", "extrinsic", "intrinsic"):
        assert torch.equal(out[key][:, :3], first[key]), key  # chunk 0 is the global frame
    # the last chunk's own frames, mapped by its chained Sim(3): depth × s, conf and intrinsics as predicted
    sim = out["chunk_sim3"][0, -1]
    s = sim[:3, :3].det().pow(1 / 3)
    torch.testing.assert_close(out["depth"][0, 5:].double(), s * last["depth"][0, 1:].double(), rtol=1e-5, atol=1e-6)
    assert torch.equal(out["depth_conf"][:, 5:], last["depth_conf"][:, 1:])
    assert torch.equal(out["intrinsic"][:, 5:], last["intrinsic"][:, 1:])
    world_local = depth_to_world_points(last["depth"][0, 1:], last["extrinsic"][0, 1:], last["intrinsic"][0, 1:])
    world_global = depth_to_world_points(out["depth"][0, 5:], out["extrinsic"][0, 5:], out["intrinsic"][0, 5:])
    mapped = world_local.double() @ sim[:3, :3].T + sim[:3, 3]
    torch.testing.assert_close(world_global.double(), mapped, rtol=1e-4, atol=1e-4)


def test_anchored_random_model_keeps_the_first_chunk():
    model = _tiny_recon()
    images = torch.rand(1, 9, 3, 28, 42, generator=torch.Generator().manual_seed(4))
    plan = chunk_plan(9, 4, 2, "anchored")  # anchors 0 and 8; the other 7 frames dealt to 4 chunks
    assert plan[0].frames == (0, 1, 5, 8) and plan[1].frames == (0, 2, 6, 8)
    with torch.no_grad():
        first = model(images[:, list(plan[0].frames)])
    out = chunked_forward(model, images, 4, 2, layout="anchored", conf_quantile=0.0)
    for key in ("depth", "depth_conf", "extrinsic", "intrinsic"):
        assert torch.equal(out[key][:, list(plan[0].frames)], first[key]), key
    assert out["chunk_frames"].tolist() == [0, 0, 1, 2, 3, 0, 1, 2, 0]
    assert torch.isfinite(out["depth"]).all() and torch.isfinite(out["extrinsic"]).all()


def test_vidllm_one_chunk_equals_forward_geometry_exactly(tokenizer):
    from vidllm.api import VidLLMPipeline
    from vidllm.model import VidLLM

    torch.manual_seed(0)
    pipeline = VidLLMPipeline(VidLLM(micro_config(), tokenizer))
    images = torch.rand(1, 4, 3, 56, 70, generator=torch.Generator().manual_seed(3))
    full = pipeline.forward_geometry(images)
    forward = pipeline.forward_geometry
    al = pipeline.config.metric_depth.alignment
    out = chunked_forward(forward, images, 4, 1, al)
    for key in ("depth", "depth_conf", "extrinsic", "intrinsic", "metric_depth", "scale", "frame_scales"):
        assert torch.equal(out[key], full[key]), key
    for key in ("depth_metric", "extrinsic_metric"):
        assert torch.equal(out[key], full[key]), key
    chunked = chunked_forward(forward, images, 3, 1, al)
    assert chunked["depth_metric"].shape == full["depth_metric"].shape
    fit = real_scale_alignment(
        chunked["depth"], chunked["metric_depth"], chunked["depth_conf"], None, al.num_frames, al.seed
    )
    torch.testing.assert_close(chunked["scale"], fit.scale)  # one alignment on the chained video
    assert torch.isfinite(chunked["depth_metric"]).all() and torch.isfinite(chunked["extrinsic_metric"]).all()
