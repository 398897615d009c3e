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


VL_TASKS = ("qa", "sqa", "grounding", "caption")


def annotation_corpus(cfg: DataConfig, splits: tuple[str, ...] = ("train", "val")) -> list[str]:
    """All annotation texts of every VL task over ``splits``, whatever ``cfg.tasks`` trains now (the
    tokenizer belongs to the model and must cover both stages). Tasks or splits whose files are
    missing are skipped; no text at all is an error."""
    from vidllm.data.dataset import VidLLMDataset
    from vidllm.errors import DataError

    texts: list[str] = []
    for split in splits:
        for task in VL_TASKS:
            try:
                dataset = VidLLMDataset(cfg, split, tasks=[task])
            except DataError:
                continue
            for name, record in dataset.samples:
                texts.extend(record_texts(name, record))
    if not texts:
        raise DataError(
            f"{cfg.root}: no annotation text found for splits {list(splits)} (needed to build the word-level tokenizer)"
        )
    return texts
