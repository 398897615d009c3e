"""Text processing of data batches: which rows are vision–language samples, their text records, and their
encoding by :class:`vl.processing.VidLLMProcessor` (re-exported here).

:func:`text_records` is the one enumeration of the VL samples of a collated batch (the collate, which encodes
them in DataLoader workers, and :func:`vidllm.training.module.vl_batch_from_batch`, which gathers their boxes,
both use it, so the encoded text and the other VL fields stay aligned).
"""

from __future__ import annotations

from vl.processing import VidLLMProcessor, is_encoded, render_record

__all__ = ["VL_TASKS", "VidLLMProcessor", "encode_batch_text", "is_encoded", "render_record", "text_records"]

VL_TASKS = ("qa", "sqa", "grounding", "caption")


def text_records(batch: dict) -> tuple[list[int], list[dict]]:
    """The VL samples of a collated batch: the clip row of each (a row repeats once per ``extra_texts`` record)
    and its text record (the row's text keys plus its unpadded ``target_boxes``, ``target_boxes_model``,
    ``target_ids``; or an ``extra_texts`` dict), in the order :func:`vidllm.training.module.vl_batch_from_batch` uses."""
    rows = [i for i, task in enumerate(batch["task"]) if task in VL_TASKS]
    extras = batch.get("extra_texts")
    index, records = [], []
    for i in rows:
        tmask = batch["target_mask"][i]
        main = {key: batch[key][i] for key in ("task", "question", "situation", "description", "answer")}
        main.update({key: batch[key][i][tmask] for key in ("target_boxes", "target_boxes_model", "target_ids")})
        for rec in [main, *(extras[i] if extras is not None else [])]:
            if rec["task"] not in VL_TASKS:
                raise ValueError(
                    f"vl_batch_from_batch: extra text record of row {i} has task {rec['task']!r}; expected one of {VL_TASKS}"
                )
            index.append(i)
            records.append(rec)
    return index, records


def encode_batch_text(batch: dict, processor: VidLLMProcessor) -> dict | None:
    """The encoded text (:meth:`VidLLMProcessor.encode_records`) of the VL samples of ``batch``, or None without any."""
    _, records = text_records(batch)
    return processor.encode_records(records) if records else None
