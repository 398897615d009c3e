"""ScanQA / SQA3D evaluation runs: EM@1, refined EM, and the n-gram metrics when the ``eval`` extra is installed."""

from __future__ import annotations

from collections import Counter, defaultdict

from vidllm.errors import DataError
from vidllm.evaluation.clips import SceneClips
from vidllm.metrics.answer_metrics import clean_answer, qa_exact_match, qa_metrics
from vidllm.metrics.ngram_metrics import MissingExtraError
from vidllm.progress import progress_bar
from vl.prompts import render_prompt

__all__ = [
    "evaluate_qa",
    "em_by_question_type",
    "majority_answer_baseline",
    "question_type",
    "type_prior_baseline",
    "visible_color_em",
]


def majority_answer_baseline(train_answers: list[str], references: dict) -> dict:
    """EM@1 of always answering the most frequent (cleaned) training answer."""
    if not train_answers:
        return {"answer": "", "em@1": 0.0}
    answer = Counter(clean_answer(a) for a in train_answers).most_common(1)[0][0]
    res = qa_exact_match({q: answer for q in references}, references)
    return {"answer": answer, "em@1": res["em@1"], "refined_em": res["refined_em"]}


def question_type(question: str, words: int = 2) -> str:
    """The question's type: its first ``words`` lower-cased words ('what color', 'how many', ...)."""
    return " ".join(question.lower().split()[:words])


def em_by_question_type(predictions: dict, references: dict, questions: dict) -> dict[str, dict]:
    """EM@1 per :func:`question_type` over the questions with references: ``type → {em@1, count}``."""
    groups: dict[str, list] = defaultdict(list)
    for q in references:
        groups[question_type(questions[q])].append(q)
    return {
        t: {
            "em@1": qa_exact_match({q: predictions[q] for q in ids}, {q: references[q] for q in ids})["em@1"],
            "count": len(ids),
        }
        for t, ids in sorted(groups.items())
    }


def type_prior_baseline(train: list[tuple[str, list[str]]], val: dict[str, tuple[str, list[str]]]) -> dict:
    """EM@1 of a text-only answerer that knows the question type and nothing about the scene.

    For each :func:`question_type` it answers the (cleaned) answer that is acceptable for the most
    training questions of that type (an answer counts once per question, in any reference slot);
    unseen types get the overall most acceptable answer.

    Args:
        train: ``(question, answers)`` per training question; val: ``question_id → (question, answers)``.
    Returns:
        ``em@1``, ``refined_em``, ``answers`` (type → the answer it gives) and ``em@1_by_type``.
    """
    per_type: dict[str, Counter] = defaultdict(Counter)
    overall: Counter = Counter()
    for question, answers in train:
        accepted = {clean_answer(a) for a in answers}
        per_type[question_type(question)].update(accepted)
        overall.update(accepted)
    if not overall:
        return {"em@1": 0.0, "refined_em": 0.0, "answers": {}, "em@1_by_type": {}}
    fallback = overall.most_common(1)[0][0]
    chosen = {t: c.most_common(1)[0][0] for t, c in per_type.items()}
    preds = {q: chosen.get(question_type(question), fallback) for q, (question, _) in val.items()}
    refs = {q: answers for q, (_, answers) in val.items()}
    res = qa_exact_match(preds, refs)
    by_type = em_by_question_type(preds, refs, {q: question for q, (question, _) in val.items()})
    return {
        "em@1": res["em@1"],
        "refined_em": res["refined_em"],
        "answers": dict(sorted(chosen.items())),
        "em@1_by_type": {t: v["em@1"] for t, v in by_type.items()},
    }


def evaluate_qa(
    predictor,
    clips: SceneClips,
    task: str = "qa",
    limit: int | None = None,
    captions: bool = True,
    max_new_tokens: int | None = None,
    progress: bool = True,
) -> tuple[list[dict], dict]:
    """Answer every question of the split (``task``: 'qa' = ScanQA, 'sqa' = SQA3D).

    Returns ``predictions`` (per question: ``question_id, scene_id, question, prediction, answers`` and
    ``targets_visible``: every object the question is about is visible in the evaluated clip
    (:meth:`SceneClips.visible_ids`), None when the record names no object) and the
    :func:`~vidllm.metrics.answer_metrics.qa_metrics` dict with ``em@1_by_type`` and ``what_color_visible``
    (:func:`visible_color_em`); without pycocoevalcap the n-gram metrics are listed under ``unavailable``.
    """
    records = clips.records(task)
    if limit:
        records = records[:limit]
    if not records:
        raise DataError(f"{clips.cfg.root}: no {task} records in split '{clips.dataset.split}'")
    groups: dict[str, list] = defaultdict(list)
    for rec in records:
        groups[rec.scene_id].append(rec)
    predictions: list[dict] = []
    bar = progress_bar(total=len(records), desc=task, unit="question", enabled=progress)
    for scene_id, recs in groups.items():
        named = [r for r in recs if getattr(r, "object_ids", None)]
        visible = clips.visible_ids(scene_id) if named else set()
        predictor.prepare(clips.clip(scene_id))
        prompts = [render_prompt(task, r.question, situation=getattr(r, "situation", "")) for r in recs]
        for rec, text in zip(recs, predictor.generate(prompts, max_new_tokens)):
            ids = [int(i) for i in getattr(rec, "object_ids", None) or []]
            predictions.append(
                {
                    "question_id": str(rec.question_id),
                    "scene_id": scene_id,
                    "question": rec.question,
                    "prediction": text,
                    "answers": list(rec.answers),
                    "targets_visible": all(i in visible for i in ids) if ids else None,
                }
            )
        bar.update(len(recs))
    bar.close()
    preds = {p["question_id"]: p["prediction"] for p in predictions}
    refs = {p["question_id"]: p["answers"] for p in predictions if p["answers"]}
    if not refs:
        raise DataError(
            f"{clips.cfg.root}: the {task} records of split '{clips.dataset.split}' have no reference answers"
        )
    try:
        metrics = qa_metrics(preds, refs, with_captions=captions)
    except MissingExtraError as err:
        metrics = qa_metrics(preds, refs, with_captions=False)
        metrics["unavailable"] = {"bleu-4, meteor, rouge-l, cider": str(err)}
    metrics["em@1_by_type"] = em_by_question_type(preds, refs, {p["question_id"]: p["question"] for p in predictions})
    metrics["what_color_visible"] = visible_color_em(predictions)
    return predictions, metrics


def visible_color_em(predictions: list[dict], qtype: str = "what color") -> dict:
    """EM@1 on the questions of type ``qtype`` whose target objects are all visible in the evaluated clip.

    Args:
        predictions: rows with ``question, prediction, answers, targets_visible`` (see :func:`evaluate_qa`).
    Returns:
        ``{"em@1": float | None, "count": int}`` (None when no such question).
    """
    rows = [
        p for p in predictions if p.get("targets_visible") and p["answers"] and question_type(p["question"]) == qtype
    ]
    if not rows:
        return {"em@1": None, "count": 0}
    res = qa_exact_match(
        {str(k): p["prediction"] for k, p in enumerate(rows)}, {str(k): p["answers"] for k, p in enumerate(rows)}
    )
    return {"em@1": res["em@1"], "count": len(rows)}
