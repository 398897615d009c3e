"""The Python API: a video in, a metric point cloud, answers and 3D boxes out.

    from vidllm import VidLLMPipeline
    pipe = VidLLMPipeline.from_pretrained("outputs/demo/stage2/model")  # dtype="bfloat16" → autocast
    rec = pipe.reconstruct("scene.mp4")            # Reconstruction: points, colours, depth, cameras
    rec.save("scene.ply")
    ans = pipe.answer("frames/", "what colour is the sofa?")   # Answer: text, boxes, point cloud
    hit = pipe.ground("frames/", "the chair next to the desk")  # Grounding: box, boxes, scores
    pipe = VidLLMPipeline(model)                   # or wrap a VidLLM already in memory

:class:`VidLLMPipeline` wraps a :class:`vidllm.model.VidLLM` (``pipe.model``) rather than being part
of it: the model is the ``nn.Module`` (forward, losses, weights I/O), the pipeline decodes and
preprocesses videos, runs the model's one forward under the compute dtype's autocast and turns its
outputs into the result types of :mod:`vidllm.results`.

``video`` is anything :func:`vidllm.video.read_frames` accepts: a video file, a folder of images
(sorted numerically), a ScanNet scene folder, a list of image paths, a list of PIL images, a
``[S, 3, H, W]`` tensor in [0, 1] or a ``[S, H, W, 3]`` uint8 array. Frames are sampled with
the model config's ``data.num_frames`` / ``data.frame_sampling`` (``coverage`` needs known
geometry and falls back to ``uniform`` for raw video) unless ``num_frames`` is given, and each
frame is resized to cover the model's input size and centre-cropped, so frames of mixed sizes
work (the camera head predicts each frame's intrinsics).

All outputs are in metres in the **model frame** (the first frame's camera: x right, y down,
z forward) after real-scale alignment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from recon.choices import check_choice
from recon.chunked import ChunkLayout, check_chunking, chunked_forward, default_overlap
from recon.compiled import COMPILE_MODES, CompileMode, compile_for_inference
from vidllm.config import VidLLMConfig
from vidllm.data.clip import preprocess_frames
from vidllm.modeling_outputs import VidLLMOutput
from vidllm.results import Answer, Grounding, Reconstruction, reconstruction_from_outputs
from vidllm.video import Frames, read_frames

if TYPE_CHECKING:
    from vidllm.model import VidLLM

__all__ = ["VidLLMPipeline", "frames_to_tensor"]


def frames_to_tensor(frames: Frames | Sequence[np.ndarray], image_size: int, resize_side: str = "shorter") -> Tensor:
    """Decoded RGB frames (sizes may differ) → ``[S, 3, H, W]`` float in [0, 1].

    :func:`vidllm.data.clip.preprocess_frames` — the preprocessing training and evaluation use (resize
    ``resize_side`` to ``image_size``, centre-crop to multiples of 14), so a frame gives the model the
    same pixels here as in training; frames of other sizes are resized to cover the first's.
    """
    return preprocess_frames(frames.images if isinstance(frames, Frames) else frames, image_size, resize_side)


def _as_list(x) -> list:
    return [x] if isinstance(x, str) else list(x)


def _as_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    """``None`` / a ``torch.dtype`` / its name (``"bfloat16"``) → a ``torch.dtype`` (None → float32)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ValueError(
                f"VidLLMPipeline: dtype {dtype!r} is not a torch dtype (use 'float32', 'bfloat16' or 'float16')"
            )
        return getattr(torch, dtype)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"VidLLMPipeline: dtype must be a torch.dtype or its name, got {dtype!r}")
    return dtype


class VidLLMPipeline:
    """``reconstruct`` / ``answer`` / ``ground`` (and batched variants) around a :class:`~vidllm.model.VidLLM`.

    Every method runs the model through its one forward (:meth:`vidllm.model.VidLLM.forward`), then
    ``model.vl.generate`` / ``model.vl.ground`` for the language tasks.

    Args:
        model: the model to run; it is put in eval mode (``pipe.model``).
        dtype: compute dtype (``torch.bfloat16`` / ``"bfloat16"`` → autocast on the model's device;
            None or float32 → no autocast). The weights are not cast.
        compile: the reconstruction forward (:meth:`forward_geometry`, also inside :meth:`reconstruct` and the
            chunked forward) through :func:`recon.compiled.compile_for_inference`: ``"default"`` compiles it with
            the weights frozen into the graph on its first call per input shape (faster for many forwards of one
            shape, e.g. a long video in chunks; outputs equal within float rounding). ``"none"`` (default): eager.
            The language path always runs eagerly. Compile after the weights are final.
    """

    def __init__(self, model: VidLLM, dtype: torch.dtype | str | None = None, compile: CompileMode = "none") -> None:
        self.model = model.eval()
        self.compute_dtype = _as_dtype(dtype)
        self.compile_mode = compile
        self._geometry = compile_for_inference(self.model, compile)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        strict: bool = True,
        compile: CompileMode = "none",
        overrides: Sequence[str] = (),
    ) -> VidLLMPipeline:
        """The model written by :meth:`vidllm.model.VidLLM.save_pretrained` in ``directory``, wrapped.

        Args:
            device: where to put the model (default: CUDA when available, else CPU).
            dtype: compute dtype (see the class); weights stay float32 so training can resume from
                the same directory.
            strict: every weight the model expects must be in the file.
            compile: see the class.
            overrides: dotted ``KEY=VALUE`` config changes that leave the weights as they are, e.g.
                ``recon.aggregator.global_merge_ratio=0.8`` (:meth:`vidllm.model.VidLLM.from_pretrained`).
        """
        from vidllm.model import VidLLM  # here, so that frames_to_tensor alone does not import the LLM stack

        dtype = _as_dtype(dtype)  # a bad name fails before the weights are read
        check_choice("compile", compile, COMPILE_MODES)  # before the weights are read
        return cls(VidLLM.from_pretrained(directory, device=device, strict=strict, overrides=overrides), dtype, compile)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device}, dtype={self.compute_dtype}, compile={self.compile_mode!r})"

    # ------------------------------------------------------------------ inputs
    @property
    def config(self) -> VidLLMConfig:
        """The model's config."""
        return self.model.config

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        return next(self.model.parameters()).device

    def autocast(self):
        """Autocast context for :attr:`compute_dtype` on the model's device (disabled for float32)."""
        dtype = self.compute_dtype
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32)

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

    @torch.no_grad()
    def forward_geometry(self, images: Tensor) -> VidLLMOutput:
        """``[B, S, 3, H, W]`` in [0, 1] → the model's :class:`~vidllm.modeling_outputs.VidLLMOutput` without VL
        fields (depth, cameras, metric depth, ``scale``, ``depth_metric`` / ``extrinsic_metric``): its forward
        under :meth:`autocast` (compiled when the pipeline was built with ``compile``)."""
        with self.autocast():
            return self._geometry(images)

    def geometry_forward(
        self, chunk_size: int | None = None, overlap: int | None = None, chunk_layout: ChunkLayout = "consecutive"
    ) -> Callable[[Tensor], Mapping[str, Tensor]]:
        """The reconstruction forward ``[B, S, 3, H, W] → outputs``: :meth:`forward_geometry`, or with ``chunk_size``
        its chunked version (:func:`recon.chunked.chunked_forward` with the model's real-scale alignment), whose
        outputs carry the same geometry keys (``depth``, ``depth_conf``, ``extrinsic``, ``intrinsic``, ``scale``,
        ``depth_metric``, ``extrinsic_metric``, ...). ``overlap`` defaults to ``max(1, chunk_size // 4)``.

        Raises:
            ValueError: ``overlap`` / ``chunk_layout`` without ``chunk_size``, or settings that
                :func:`recon.chunked.check_chunking` rejects.
        """
        if chunk_size is None:
            if overlap is not None or chunk_layout != "consecutive":
                raise ValueError(
                    f"overlap={overlap!r} / chunk_layout={chunk_layout!r} need chunk_size (the number of frames per forward)"
                )
            return self.forward_geometry
        if overlap is None and isinstance(chunk_size, int):  # a non-integer chunk_size is check_chunking's error
            overlap = default_overlap(chunk_size)
        check_chunking(chunk_size, overlap, chunk_layout)
        alignment = self.config.metric_depth.alignment

        def chunked(images: Tensor) -> Mapping[str, Tensor]:
            return chunked_forward(self.forward_geometry, images, chunk_size, overlap, alignment, chunk_layout)

        return chunked

    @torch.no_grad()
    def vl_inputs(self, images: Tensor, repeats: int = 1) -> tuple[Tensor, dict, VidLLMOutput]:
        """One clip ``[1, S, 3, H, W]`` → (``T'_lang``, geometry, the forward's output), float32.

        The model's forward with ``return_vl_inputs=True`` (under :meth:`autocast`): ``T'_lang [repeats, S, P, C]``
        and the detached metric geometry (``vl_geometry``: ``depth [repeats, S, H, W]``, ``extrinsic
        [repeats, S, 3, 4]``, ...), each repeated ``repeats`` times, for ``model.vl.generate`` / ``model.vl.ground``."""
        with self.autocast():
            out = self.model(images, return_vl_inputs=True)
        t_lang = out.t_lang.float().expand(repeats, *out.t_lang.shape[1:])
        geometry = {k: v.float().expand(repeats, *v.shape[1:]) for k, v in out.vl_geometry.items()}
        return t_lang, geometry, out

    # ------------------------------------------------------------------ reconstruction
    @torch.no_grad()
    def reconstruct(
        self,
        video,
        num_frames: int | None = None,
        chunk_size: int | None = None,
        overlap: int | None = None,
        chunk_layout: ChunkLayout = "consecutive",
    ) -> Reconstruction:
        """Metric point cloud, depth and cameras of ``video`` (model frame, metres).

        Args:
            num_frames: frames sampled from the video (default: the config's ``data.num_frames``).
            chunk_size: long videos: reconstruct in chunks of this many frames, merged by Sim(3) on the frames
                they share, then one real-scale alignment over the whole video (:func:`recon.chunked.chunked_forward`);
                None runs all frames in one forward. Memory then grows with the chunk, not the video.
            overlap: frames shared by consecutive chunks, or anchor frames in every chunk (default
                ``max(1, chunk_size // 4)``).
            chunk_layout: ``"consecutive"`` (runs of frames, each aligned to the one before) or ``"anchored"``
                (the anchor frames in every chunk, every chunk aligned to the first: no drift).
        """
        return self.reconstruct_batch([video], num_frames, chunk_size, overlap, chunk_layout)[0]

    @torch.no_grad()
    def reconstruct_batch(
        self,
        videos: Sequence,
        num_frames: int | None = None,
        chunk_size: int | None = None,
        overlap: int | None = None,
        chunk_layout: ChunkLayout = "consecutive",
    ) -> list[Reconstruction]:
        """:meth:`reconstruct` for several videos; videos with equal preprocessed shapes share a forward (a chunked
        forward when ``chunk_size`` is set)."""
        forward = self.geometry_forward(chunk_size, overlap, chunk_layout)  # bad chunk settings fail before decoding
        results: list[Reconstruction | None] = [None] * len(videos)
        for group in self._groups(videos, num_frames):
            idx, images, frames = group
            out = forward(images)
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
        processor = self.model.vl.lm.processor  # renders and tokenises; the forward only splices the 3D tokens in
        prompts, ground_text = processor.questions(questions, situations), processor.grounding(questions)
        with self.autocast():
            texts = self.model.vl.generate(t_lang, geometry, prompts, max_new_tokens)
            grounded = self.model.vl.ground(t_lang, geometry, ground_text)
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
            res = self.model.vl.ground(t_lang, geometry, self.model.vl.lm.processor.grounding(descriptions), props)
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
