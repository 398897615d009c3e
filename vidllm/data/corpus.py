"""The text corpus of a dataset's annotations (questions, answers, situations, descriptions).

Used to build the word-level tokenizer of a freshly built LLM (the CPU default): every word the
training and validation annotations use becomes a token.
"""

from __future__ import annotations

from collections.abc import Iterator

from vidllm.config import DataConfig

__all__ = ["annotation_corpus", "record_texts"]


def record_texts(task: str, record) -> Iterator[str]:
    """The texts of one dataset sample record (see :class:`vidllm.data.dataset.VidLLMDataset`)."""
    if task == "caption":
        _key, refs = record
        yield from refs
        return
    for name in ("question", "situation", "description", "utterance"):
        value = getattr(record, name, None)
        if value:
            yield value
    yield from getattr(record, "answers", None) or []


def annotation_corpus(cfg: DataConfig, splits: tuple[str, ...] = ("train", "val")) -> list[str]:
    """All annotation texts of the configured tasks over ``splits`` (splits that do not exist are skipped)."""
    from vidllm.data.dataset import VidLLMDataset
    from vidllm.errors import DataError

    texts: list[str] = []
    for split in splits:
        try:
            dataset = VidLLMDataset(cfg, split)
        except DataError:
            if split == splits[0]:
                raise
            continue
        for task, record in dataset.samples:
            if task != "recon":
                texts.extend(record_texts(task, record))
    return texts
