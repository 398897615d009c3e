"""Reading the ``video`` argument of the Python API and the commands into RGB frames.

Accepted forms (README "Python API"): a path to a video file (``.mp4``, ``.avi``,
``.mov``, ``.mkv``, ``.webm``), a folder of images (sorted numerically by the digits in their
names), a ScanNet scene folder (its ``color/`` images), a list of image paths, a list of PIL
images or of ``[H, W(, C)]`` arrays, a ``[S, 3, H, W]`` tensor in [0, 1], or a ``[S, H, W, 3]`` uint8 array.

Frames are returned as ``uint8`` RGB arrays ``[H, W, 3]`` — grayscale, RGBA, palette and 16-bit
images are converted — and may differ in size (the preprocessing brings each to the model's
input size). Only the sampled frames are decoded from video files (``imageio``'s ffmpeg reader
seeks for long jumps), so a video longer than memory works. A corrupt image in a folder is
skipped with a warning naming it (``on_corrupt="skip"``, the default) or is an error
(``on_corrupt="error"``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from recon.files import IMAGE_SUFFIXES, numeric_sort_key  # one implementation, shared with recon.reconstruct
from vidllm.errors import DataError

__all__ = [
    "VIDEO_SUFFIXES",
    "IMAGE_SUFFIXES",
    "Frames",
    "read_frames",
    "sample_indices",
    "numeric_sort_key",
    "to_rgb_uint8",
]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
_log = logging.getLogger(__name__)


@dataclass
class Frames:
    """Decoded frames and where they came from."""

    images: list[np.ndarray]
    """RGB ``uint8`` arrays ``[H, W, 3]`` (sizes may differ)."""
    indices: list[int]
    """Index of each frame in the source (video frame number or position in the sorted folder)."""
    names: list[str] = field(default_factory=list)
    """Source file name (or ``video.mp4#index``) of each frame."""
    skipped: list[str] = field(default_factory=list)
    """Corrupt files that were skipped."""
    source_count: int = 0
    """Frames available in the source before sampling."""


def sample_indices(count: int, num_frames: int | None, sampling: str = "uniform", stride: int = 1) -> list[int]:
    """Indices of the frames to keep from ``count`` available ones.

    ``uniform``: ``num_frames`` evenly spaced indices including the first and last frame;
    ``segment``: the middle frame of each of ``num_frames`` equal segments (the evaluation-time
    choice of :func:`vidllm.data.sampling.sample_segments`);
    ``stride``: every ``stride``-th frame (then at most ``num_frames`` of them); ``None`` keeps all.
    """
    if count <= 0:
        return []
    if sampling == "stride":
        idx = list(range(0, count, max(1, stride)))
        return idx if num_frames is None else idx[:num_frames]
    if sampling not in ("uniform", "segment"):
        raise ValueError(
            f"frame sampling {sampling!r} needs scene geometry; use 'uniform', 'segment' or 'stride' for plain videos"
        )
    if num_frames is None or num_frames >= count:
        return list(range(count))
    if sampling == "segment":
        from vidllm.data.sampling import sample_segments

        return sample_segments(np.arange(count), num_frames).tolist()
    return np.linspace(0, count - 1, num_frames).round().astype(int).tolist()


def to_rgb_uint8(image: Image.Image | np.ndarray, name: str = "image") -> np.ndarray:
    """Convert a PIL image or array (gray, RGB, RGBA; uint8, uint16 or float) to ``uint8 [H, W, 3]``."""
    if isinstance(image, Image.Image):
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(image, dtype=np.float64)
            peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
            array = np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
            return np.repeat(array[..., None], 3, axis=-1)
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise DataError(f"{name}: expected an image array [H, W], [H, W, 3] or [H, W, 4], got shape {array.shape}")
    if array.dtype == np.uint16:
        array = (array.astype(np.float64) / 65535.0 * 255.0 + 0.5).astype(np.uint8)
    elif array.dtype.kind == "f":
        array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise DataError(f"{name}: unsupported image dtype {array.dtype}")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


def _load_image_file(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        img.load()
        return to_rgb_uint8(img, str(path))


def _read_image_files(paths: list[Path], num_frames, sampling, stride, on_corrupt) -> Frames:
    if not paths:
        raise DataError("no images to read: the folder or list is empty")
    chosen = sample_indices(len(paths), num_frames, sampling, stride)
    out = Frames(images=[], indices=[], source_count=len(paths))
    for i in chosen:
        path = paths[i]
        if not path.is_file():
            raise DataError(f"image not found: {path}")
        try:
            out.images.append(_load_image_file(path))
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            if on_corrupt == "error":
                raise DataError(f"{path}: corrupt or unreadable image ({err})") from None
            _log.warning("skipping corrupt image %s (%s)", path, err)
            out.skipped.append(str(path))
            continue
        out.indices.append(i)
        out.names.append(path.name)
    if not out.images:
        raise DataError(f"none of the {len(chosen)} sampled images could be read (first: {paths[chosen[0]]})")
    return out


def _read_video_file(path: Path, num_frames, sampling, stride) -> Frames:
    import imageio.v2 as imageio

    try:
        reader = imageio.get_reader(str(path), format="FFMPEG")
    except Exception as err:
        raise DataError(
            f"{path}: cannot open video ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        ) from None
    try:
        try:
            count = reader.count_frames()
        except Exception as err:
            raise DataError(
                f"{path}: cannot read video stream — unsupported codec or corrupt file ({str(err).splitlines()[0]})"
            ) from None
        if count <= 0:
            raise DataError(f"{path}: the video has no frames")
        chosen = sample_indices(count, num_frames, sampling, stride)
        out = Frames(images=[], indices=[], source_count=count)
        for i in chosen:
            try:
                frame = reader.get_data(i)
            except IndexError:
                break  # container reported more frames than it holds
            except Exception as err:
                raise DataError(f"{path}: failed to decode frame {i} ({str(err).splitlines()[0]})") from None
            out.images.append(to_rgb_uint8(frame, f"{path}#{i}"))
            out.indices.append(i)
            out.names.append(f"{path.name}#{i}")
    finally:
        reader.close()
    if not out.images:
        raise DataError(f"{path}: no frame could be decoded")
    return out


def read_frames(
    video, num_frames: int | None = None, sampling: str = "uniform", stride: int = 1, on_corrupt: str = "skip"
) -> Frames:
    """Decode the frames of any accepted ``video`` form (see the module docstring).

    Args:
        video: path (video file, image folder, ScanNet scene folder), list of paths, list of
            PIL images, ``[S, 3, H, W]`` float tensor in [0, 1] or ``[S, H, W, 3]`` uint8 array.
        num_frames: frames to keep (``None`` = all).
        sampling: ``"uniform"`` or ``"stride"``.
        on_corrupt: ``"skip"`` (warn and drop) or ``"error"`` for unreadable images.
    Raises:
        DataError: empty input, missing path, unsupported codec, unreadable frames.
    """
    if on_corrupt not in ("skip", "error"):
        raise ValueError(f"on_corrupt must be 'skip' or 'error', got {on_corrupt!r}")
    if isinstance(video, torch.Tensor):
        if video.ndim != 4 or video.shape[1] != 3:
            raise DataError(f"video tensor must be [S, 3, H, W] in [0, 1], got shape {tuple(video.shape)}")
        video = video.detach().cpu().permute(0, 2, 3, 1).float().numpy()
    if isinstance(video, np.ndarray):
        if video.ndim != 4 or video.shape[0] == 0:
            raise DataError(f"video array must be [S, H, W, C] with S >= 1, got shape {video.shape}")
        idx = sample_indices(len(video), num_frames, sampling, stride)
        return Frames(
            [to_rgb_uint8(video[i], f"frame {i}") for i in idx],
            idx,
            [f"frame {i}" for i in idx],
            source_count=len(video),
        )
    if isinstance(video, (list, tuple)):
        if not video:
            raise DataError("the list of frames is empty")
        if all(isinstance(v, (Image.Image, np.ndarray)) for v in video):  # PIL images or [H, W(, C)] arrays
            idx = sample_indices(len(video), num_frames, sampling, stride)
            return Frames(
                [to_rgb_uint8(video[i], f"frame {i}") for i in idx],
                idx,
                [f"frame {i}" for i in idx],
                source_count=len(video),
            )
        return _read_image_files([Path(v) for v in video], num_frames, sampling, stride, on_corrupt)
    path = Path(video)
    if not path.exists():
        raise DataError(f"video not found: {path}")
    if path.is_dir():
        folder = path / "color" if (path / "color").is_dir() else path
        images = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=numeric_sort_key)
        if not images:
            raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        return _read_image_files(images, num_frames, sampling, stride, on_corrupt)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return _read_video_file(path, num_frames, sampling, stride)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _read_image_files([path], num_frames, sampling, stride, on_corrupt)
    raise DataError(
        f"{path}: unsupported input; expected a video ({', '.join(VIDEO_SUFFIXES)}), an image folder or an image"
    )
