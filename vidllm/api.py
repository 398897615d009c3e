"""The Python API: a video in, a metric point cloud, answers and 3D boxes out (DESIGN §1).

    from vidllm import VidLLM
    model = VidLLM.from_pretrained("outputs/demo/stage2/model")
    rec = model.reconstruct("scene.mp4")            # Reconstruction: points, colours, depth, cameras
    rec.save("scene.ply")
    ans = model.answer("frames/", "what colour is the sofa?")   # Answer: text, boxes, point cloud
    hit = model.ground("frames/", "the chair next to the desk")  # Grounding: box, boxes, scores

``video`` is anything :func:`vidllm.video.read_frames` accepts: a video file, a folder of images
(sorted numerically), a ScanNet scene folder, a list of image paths, a list of PIL images, a
``[S, 3, H, W]`` tensor in [0, 1] or a ``[S, H, W, 3]`` uint8 array. Frames are sampled with
the model config's ``data.num_frames`` / ``data.frame_sampling`` (``coverage`` needs known
geometry and falls back to ``uniform`` for raw video) unless ``num_frames`` is given, and each
frame is resized to cover the model's input size and centre-cropped, so frames of mixed sizes
work (the camera head predicts each frame's intrinsics).

All outputs are in metres in the **model frame** (the first frame's camera: x right, y down,
z forward) after real-scale alignment. The methods live in :class:`InferenceMixin`, which
:class:`vidllm.model.VidLLM` inherits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recon.geometry import depth_to_world_points
from vidllm.data.clip import preprocess_frames
from vidllm.errors import DataError
from vidllm.modeling_outputs import VidLLMOutput
from vidllm.video import Frames, read_frames

__all__ = ["Reconstruction", "Answer", "Grounding", "InferenceMixin", "frames_to_tensor", "reconstruction_from_outputs"]


# ---------------------------------------------------------------------------------------- results
@dataclass
class Reconstruction:
    """A metric reconstruction of one clip (model frame, metres)."""

    points: np.ndarray
    """``[N, 3]`` float32 world points of every pixel with valid depth."""
    colors: np.ndarray
    """``[N, 3]`` float32 RGB in [0, 1] of each point."""
    confidence: np.ndarray
    """``[N]`` depth confidence of each point (higher is better; 1 + exp(x) for the DPT head)."""
    depth: np.ndarray
    """``[S, H, W]`` metric depth."""
    extrinsics: np.ndarray
    """``[S, 3, 4]`` world→camera (model frame = camera 0), translation in metres."""
    intrinsics: np.ndarray
    """``[S, 3, 3]`` pixel intrinsics of the preprocessed frames."""
    scale: float
    """Real-scale factor applied to the relative reconstruction (1 without a metric model)."""
    depth_confidence: np.ndarray | None = None
    """``[S, H, W]`` per-pixel confidence (``confidence`` is this at the kept pixels)."""
    images: np.ndarray | None = None
    """``[S, H, W, 3]`` uint8 preprocessed frames."""
    frame_indices: list[int] = field(default_factory=list)
    """Index of each frame in the source video / folder."""
    frame_names: list[str] = field(default_factory=list)
    """Source name of each frame."""

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @property
    def camera_centers(self) -> np.ndarray:
        """``[S, 3]`` camera centres in the model frame."""
        rot, trans = self.extrinsics[:, :, :3], self.extrinsics[:, :, 3]
        return -np.einsum("sji,sj->si", rot, trans)

    def filter_confidence(self, quantile: float) -> Reconstruction:
        """Keep the points whose confidence is at least the ``quantile`` (0–1) of all confidences."""
        if not 0.0 <= quantile < 1.0:
            raise ValueError(f"confidence quantile must be in [0, 1), got {quantile}")
        if quantile == 0.0 or len(self) == 0:
            return self
        keep = self.confidence >= np.quantile(self.confidence, quantile)
        return self._subset(keep)

    def voxel_down_sample(self, voxel_size: float) -> Reconstruction:
        """One point per ``voxel_size`` (metres) voxel: mean position and colour, max confidence."""
        if voxel_size <= 0:
            raise ValueError(f"voxel size must be > 0, got {voxel_size}")
        if len(self) == 0:
            return self
        keys = np.floor(self.points / voxel_size).astype(np.int64)
        _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        n = counts.shape[0]
        pts = np.zeros((n, 3)), np.zeros((n, 3))
        np.add.at(pts[0], inverse, self.points)
        np.add.at(pts[1], inverse, self.colors)
        conf = np.full(n, -np.inf)
        np.maximum.at(conf, inverse, self.confidence)
        return self._replace(
            points=(pts[0] / counts[:, None]).astype(np.float32),
            colors=(pts[1] / counts[:, None]).astype(np.float32),
            confidence=conf.astype(np.float32),
        )

    def _subset(self, keep: np.ndarray) -> Reconstruction:
        return self._replace(points=self.points[keep], colors=self.colors[keep], confidence=self.confidence[keep])

    def _replace(self, **kw) -> Reconstruction:
        from dataclasses import replace

        return replace(self, **kw)

    def to_open3d(self):
        """An ``open3d.geometry.PointCloud`` with the points and colours."""
        import open3d as o3d

        pcd = o3d.geometry.PointCloud()
        pcd.points = o3d.utility.Vector3dVector(self.points.astype(np.float64))
        pcd.colors = o3d.utility.Vector3dVector(np.clip(self.colors, 0, 1).astype(np.float64))
        return pcd

    def save(self, path: str | Path) -> Path:
        """Write a binary coloured PLY (atomically: temporary file, then rename)."""
        from recon.reconstruct import write_ply

        if len(self) == 0:
            raise DataError(f"{path}: the reconstruction has no points to write")
        return write_ply(path, self.points, self.colors)

    def cameras_dict(self) -> dict:
        """Poses and intrinsics as JSON-ready lists (``cameras.json``)."""
        return {
            "frame": "model (camera of the first frame; x right, y down, z forward; metres)",
            "scale": float(self.scale),
            "frames": [
                {
                    "index": int(self.frame_indices[i]) if i < len(self.frame_indices) else i,
                    "name": self.frame_names[i] if i < len(self.frame_names) else "",
                    "extrinsic_w2c": self.extrinsics[i].tolist(),
                    "intrinsic": self.intrinsics[i].tolist(),
                    "center": self.camera_centers[i].tolist(),
                }
                for i in range(self.extrinsics.shape[0])
            ],
        }


@dataclass
class Answer:
    """An answer to a question about a video."""

    text: str
    """The generated answer."""
    boxes: np.ndarray
    """``[K, 6]`` boxes (centre, size; model frame, metres) of the objects the question refers to:
    the grounding head's slots above ``vl.grounding.score_threshold`` (at least one)."""
    scores: np.ndarray
    """``[K]`` objectness probability of each box."""
    point_cloud: Reconstruction
    """The reconstruction the answer was computed from."""


@dataclass
class Grounding:
    """The object(s) a description refers to."""

    box: np.ndarray
    """``[6]`` the prediction: the chosen proposal when proposals were given, else the best regressed box."""
    boxes: np.ndarray
    """``[K, 6]`` all selected regressed boxes (multi-target prediction)."""
    scores: np.ndarray
    """``[K]`` objectness of ``boxes``."""
    proposal_index: int
    """Index of the chosen proposal (−1 without proposals or when none was chosen)."""
    point_cloud: Reconstruction
    """The reconstruction the boxes were predicted on."""


# ---------------------------------------------------------------------------------------- preprocessing
def frames_to_tensor(frames: Frames | Sequence[np.ndarray], image_size: int, resize_side: str = "shorter") -> Tensor:
    """Decoded RGB frames (sizes may differ) → ``[S, 3, H, W]`` float in [0, 1].

    :func:`vidllm.data.clip.preprocess_frames` — the preprocessing training and evaluation use (DESIGN §4:
    resize ``resize_side`` to ``image_size``, centre-crop to multiples of 14), so a frame gives the
    model the same pixels here as in training; frames of other sizes are resized to cover the first's.
    """
    return preprocess_frames(frames.images if isinstance(frames, Frames) else frames, image_size, resize_side)


def reconstruction_from_outputs(
    out: VidLLMOutput | dict, images: Tensor, index: int = 0, frames: Frames | None = None
) -> Reconstruction:
    """Model outputs (a :class:`~vidllm.modeling_outputs.VidLLMOutput`, or a plain VGGT prediction dict) of batch item ``index`` → :class:`Reconstruction`.

    Uses the metric keys (``depth_metric``, ``extrinsic_metric``, ``scale``) when present (Vid-LLM),
    else the relative ones (a plain VGGT model). ``images`` is ``[B, S, 3, H, W]`` or ``[S, 3, H, W]``.
    """
    if images.dim() == 4:
        images = images[None]
    depth = out.get("depth_metric", out["depth"])[index].float()
    extrinsic = out.get("extrinsic_metric", out["extrinsic"])[index].float()
    intrinsic = out["intrinsic"][index].float()
    conf = out["depth_conf"][index].float() if out.get("depth_conf") is not None else torch.ones_like(depth)
    scale = float(out["scale"][index]) if "scale" in out else 1.0
    points = depth_to_world_points(depth, extrinsic, intrinsic)
    valid = (depth > 0) & torch.isfinite(depth) & torch.isfinite(points).all(-1)
    rgb = images[index].permute(0, 2, 3, 1).float()
    return Reconstruction(
        points=points[valid].cpu().numpy().astype(np.float32),
        colors=rgb[valid].cpu().numpy().astype(np.float32),
        confidence=conf[valid].cpu().numpy().astype(np.float32),
        depth=depth.cpu().numpy(),
        extrinsics=extrinsic.cpu().numpy(),
        intrinsics=intrinsic.cpu().numpy(),
        scale=scale,
        depth_confidence=conf.cpu().numpy(),
        images=(rgb.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy(),
        frame_indices=list(frames.indices) if frames is not None else list(range(depth.shape[0])),
        frame_names=list(frames.names) if frames is not None else [],
    )


def _as_list(x) -> list:
    return [x] if isinstance(x, str) else list(x)


# ---------------------------------------------------------------------------------------- the mixin
class InferenceMixin:
    """``reconstruct`` / ``answer`` / ``ground`` (and batched variants) for :class:`vidllm.model.VidLLM`.

    The host class provides ``config``, ``vl`` and ``forward`` (:meth:`vidllm.model.VidLLM.forward`, the
    one place the model's parts are chained); every method here runs the model through it.
    """

    # ------------------------------------------------------------------ inputs
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def compute_dtype(self) -> torch.dtype:
        """Autocast dtype of inference (``from_pretrained(dtype=...)``; float32 = no autocast). Weights stay float32."""
        return getattr(self, "inference_dtype", None) or torch.float32

    def load_video(
        self, video, num_frames: int | None = None, sampling: str | None = None, on_corrupt: str = "skip"
    ) -> tuple[Tensor, Frames]:
        """Decode, sample and preprocess ``video`` → (``[S, 3, H, W]`` in [0, 1] on the model's device, the decoded :class:`Frames`)."""
        data = self.config.data
        sampling = sampling or data.frame_sampling
        if sampling == "coverage":  # needs depth and poses, which a raw video does not have
            sampling = "uniform"
        frames = read_frames(video, num_frames or data.num_frames, sampling, data.frame_stride, on_corrupt)
        images = frames_to_tensor(frames, data.image_size, data.resize_side)
        return images.to(self.device), frames

    def autocast(self):
        """Autocast context for :attr:`compute_dtype` on the model's device (disabled for float32)."""
        dtype = self.compute_dtype
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32)

    def forward_geometry(self, images: Tensor) -> tuple[dict, VidLLMOutput]:
        """``[B, S, 3, H, W]`` → (streams, :class:`~vidllm.modeling_outputs.VidLLMOutput` without VL fields):
        :meth:`forward` under autocast when a low-precision dtype was asked for."""
        with self.autocast():
            out = self(images)
        return out.streams, out

    # ------------------------------------------------------------------ reconstruction
    @torch.no_grad()
    def reconstruct(self, video, num_frames: int | None = None) -> Reconstruction:
        """Metric point cloud, depth and cameras of ``video`` (model frame, metres)."""
        return self.reconstruct_batch([video], num_frames)[0]

    @torch.no_grad()
    def reconstruct_batch(self, videos: Sequence, num_frames: int | None = None) -> list[Reconstruction]:
        """:meth:`reconstruct` for several videos; videos with equal preprocessed shapes share a forward."""
        results: list[Reconstruction | None] = [None] * len(videos)
        for group in self._groups(videos, num_frames):
            idx, images, frames = group
            _, out = self.forward_geometry(images)
            for j, i in enumerate(idx):
                results[i] = reconstruction_from_outputs(out, images, j, frames[j])
        return results  # type: ignore[return-value]

    def _groups(self, videos: Sequence, num_frames: int | None):
        """Preprocess videos and group those of equal shape: yields (indices, ``[G, S, 3, H, W]``, frames)."""
        prepared = [self.load_video(v, num_frames) for v in videos]
        shapes: dict[tuple, list[int]] = {}
        for i, (img, _) in enumerate(prepared):
            shapes.setdefault(tuple(img.shape), []).append(i)
        for idx in shapes.values():
            yield idx, torch.stack([prepared[i][0] for i in idx]), [prepared[i][1] for i in idx]

    # ------------------------------------------------------------------ language
    def vl_inputs(self, images: Tensor, repeats: int = 1) -> tuple[Tensor, dict, VidLLMOutput]:
        """One clip ``[1, S, 3, H, W]`` → (``T'_lang`` repeated ``repeats`` times, geometry repeated, the forward's output), float32.

        :meth:`forward` with ``return_vl_inputs=True`` (under autocast): ``T'_lang [repeats, S, P, C]`` and the
        detached metric geometry (``vl_geometry``) for ``vl.generate`` / ``vl.ground``."""
        with self.autocast():
            out = self(images, return_vl_inputs=True)
        t_lang = out.t_lang.float().expand(repeats, *out.t_lang.shape[1:])
        geometry = {k: v.float().expand(repeats, *v.shape[1:]) for k, v in out.vl_geometry.items()}
        return t_lang, geometry, out

    @torch.no_grad()
    def answer(
        self,
        video,
        question: str,
        situation: str | None = None,
        num_frames: int | None = None,
        max_new_tokens: int | None = None,
    ) -> Answer:
        """Answer ``question`` (SQA3D-style when ``situation`` is given) about ``video``."""
        return self.answer_many(
            video, [question], [situation] if situation is not None else None, num_frames, max_new_tokens
        )[0]

    @torch.no_grad()
    def answer_many(
        self,
        video,
        questions: Sequence[str],
        situations: Sequence[str | None] | None = None,
        num_frames: int | None = None,
        max_new_tokens: int | None = None,
    ) -> list[Answer]:
        """Several questions about one video: the video is encoded and reconstructed once."""
        questions = _as_list(questions)
        if not questions:
            return []
        situations = list(situations) if situations is not None else [None] * len(questions)
        if len(situations) != len(questions):
            raise ValueError(f"answer_many: {len(questions)} questions but {len(situations)} situations")
        images, frames = self.load_video(video, num_frames)
        t_lang, geometry, out = self.vl_inputs(images[None], len(questions))
        processor = self.vl.lm.processor  # renders and tokenises; the forward only splices the 3D tokens in
        prompts, ground_text = processor.questions(questions, situations), processor.grounding(questions)
        with self.autocast():
            texts = self.vl.generate(t_lang, geometry, prompts, max_new_tokens)
            grounded = self.vl.ground(t_lang, geometry, ground_text)
        rec = reconstruction_from_outputs(out, images, 0, frames)
        answers = []
        for i, text in enumerate(texts):
            sel = grounded["selected"][i]
            answers.append(
                Answer(text, grounded["boxes"][i][sel].cpu().numpy(), grounded["scores"][i][sel].cpu().numpy(), rec)
            )
        return answers

    @torch.no_grad()
    def answer_batch(
        self,
        videos: Sequence,
        questions: Sequence[str],
        num_frames: int | None = None,
        max_new_tokens: int | None = None,
    ) -> list[Answer]:
        """One question per video (``len(videos) == len(questions)``)."""
        if len(videos) != len(questions):
            raise ValueError(f"answer_batch: {len(videos)} videos but {len(questions)} questions")
        return [
            self.answer(v, q, num_frames=num_frames, max_new_tokens=max_new_tokens) for v, q in zip(videos, questions)
        ]

    @torch.no_grad()
    def ground(self, video, description: str, proposals=None, num_frames: int | None = None) -> Grounding:
        """The object(s) ``description`` refers to.

        Args:
            proposals: optional candidate boxes ``[Q, 6]`` (model frame, metres); the head then
                chooses one of them (``Grounding.box``, ``proposal_index``).
        """
        return self.ground_many(video, [description], proposals, num_frames)[0]

    @torch.no_grad()
    def ground_many(
        self, video, descriptions: Sequence[str], proposals=None, num_frames: int | None = None
    ) -> list[Grounding]:
        """Several descriptions about one video (encoded once); ``proposals`` shared by all."""
        descriptions = _as_list(descriptions)
        if not descriptions:
            return []
        images, frames = self.load_video(video, num_frames)
        t_lang, geometry, out = self.vl_inputs(images[None], len(descriptions))
        props = None
        if proposals is not None:
            p = torch.as_tensor(np.asarray(proposals, dtype=np.float32)).reshape(-1, 6).to(self.device)
            props = [p] * len(descriptions)
        with self.autocast():
            res = self.vl.ground(t_lang, geometry, self.vl.lm.processor.grounding(descriptions), props)
        rec = reconstruction_from_outputs(out, images, 0, frames)
        results = []
        for i in range(len(descriptions)):
            sel = res["selected"][i]
            results.append(
                Grounding(
                    box=res["box"][i].cpu().numpy(),
                    boxes=res["boxes"][i][sel].cpu().numpy(),
                    scores=res["scores"][i][sel].cpu().numpy(),
                    proposal_index=int(res["proposal_index"][i]),
                    point_cloud=rec,
                )
            )
        return results

    @torch.no_grad()
    def ground_batch(
        self,
        videos: Sequence,
        descriptions: Sequence[str],
        proposals: Sequence | None = None,
        num_frames: int | None = None,
    ) -> list[Grounding]:
        """One description (and optional proposal set) per video."""
        if len(videos) != len(descriptions):
            raise ValueError(f"ground_batch: {len(videos)} videos but {len(descriptions)} descriptions")
        props = list(proposals) if proposals is not None else [None] * len(videos)
        return [self.ground(v, d, p, num_frames) for v, d, p in zip(videos, descriptions, props)]
