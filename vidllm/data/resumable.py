"""A training DataLoader that can stop mid-epoch and resume with the same batches.

:class:`ResumableWeightedSampler` draws the epoch's sample order from ``(seed, epoch)`` alone
(Lightning calls ``set_epoch``), and :class:`ResumableDataLoader` counts the batches it has
yielded in the current epoch. Lightning stores the loader's ``state_dict()`` in every checkpoint
and hands it back through ``load_state_dict()`` on ``--ckpt_path`` resume; the sampler then skips
the samples already consumed, so the run continues with exactly the batches an uninterrupted run
would have seen (items themselves are deterministic per index). The guarantee is for one process:
under DDP, Lightning re-wraps the sampler per rank and the epoch restarts at its first batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Sampler

__all__ = ["ResumableWeightedSampler", "ResumableDataLoader"]


def draw_key(index: int, draw: int, size: int) -> int:
    """One integer for sample ``index`` (``< size``) at draw ``draw`` (0 = no draw): ``draw·size + index``."""
    return draw * size + index


def split_draw_key(key: int, size: int) -> tuple[int, int]:
    """Inverse of :func:`draw_key`: ``(index, draw)``; a plain index gives draw 0."""
    draw, index = divmod(int(key), size)
    return index, draw


class ResumableWeightedSampler(Sampler[int]):
    """Weighted sampling with replacement whose order depends only on ``(seed, epoch)``.

    Args:
        weights: ``[N]`` non-negative sample weights.
        num_samples: samples drawn per epoch.
        seed: base seed.
        draw_keys: yield :func:`draw_key` ``(index, draw)`` instead of the bare index, where ``draw ≥ 1``
            numbers the draws over all epochs — a dataset that decodes it (:func:`split_draw_key`)
            can give every draw of the same sample its own augmentation, still a function of the key alone.
    """

    def __init__(self, weights: torch.Tensor, num_samples: int, seed: int = 0, draw_keys: bool = False) -> None:
        self.weights = torch.as_tensor(weights, dtype=torch.double)
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.draw_keys = bool(draw_keys)
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def order(self, epoch: int) -> list[int]:
        """The sample indices of ``epoch`` (``[num_samples]``)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.multinomial(self.weights, self.num_samples, replacement=True, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        skip, self.skip = self.skip, 0
        order = self.order(self.epoch)
        if not self.draw_keys:
            yield from order[skip:]
            return
        first = self.epoch * self.num_samples + 1
        for pos in range(skip, len(order)):
            yield draw_key(order[pos], first + pos, len(self.weights))

    def __len__(self) -> int:
        return self.num_samples


class ResumableDataLoader(DataLoader):
    """A DataLoader with Lightning's ``state_dict`` protocol; resumable when its sampler is a
    :class:`ResumableWeightedSampler`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Under DDP Lightning rebuilds the loader around a per-rank sampler wrapper: it still works,
        # but resumes at the start of the epoch (see the module docstring).
        self._resumable = isinstance(self.sampler, ResumableWeightedSampler)
        self._batches = 0
        self._resume_from = 0

    def __iter__(self):
        self._batches = self._resume_from if self._resumable else 0
        if self._resumable:
            self.sampler.skip = self._resume_from * (self.batch_size or 1)
        self._resume_from = 0
        for batch in super().__iter__():
            self._batches += 1
            yield batch

    def __len__(self) -> int:
        return super().__len__()

    def state_dict(self) -> dict:
        return {"batches": self._batches, "epoch": getattr(self.sampler, "epoch", 0)}

    def load_state_dict(self, state: dict) -> None:
        if not self._resumable:
            return
        self._resume_from = int(state.get("batches", 0))
        self.sampler.set_epoch(int(state.get("epoch", self.sampler.epoch)))
