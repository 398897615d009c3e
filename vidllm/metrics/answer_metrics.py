"""Question-answering metrics for ScanQA / SQA3D: answer cleaning, EM@1 and refined EM (README "Evaluation protocols").

The n-gram caption metrics (BLEU-4 / METEOR / ROUGE-L / CIDEr) live in
:mod:`vidllm.metrics.ngram_metrics`; :func:`qa_metrics` combines both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from vidllm.metrics.ngram_metrics import CaptionScorer, caption_metrics

__all__ = ["caption_metrics", "clean_answer", "exact_match", "refined_exact_match", "qa_exact_match", "qa_metrics"]

_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty"
).split()
_DIGIT_TO_WORD = {str(i): word for i, word in enumerate(_NUMBER_WORDS)}
_DIGIT_TO_WORD["none"] = "zero"

_CONTRACTIONS = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldnt": "couldn't",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hasnt": "hasn't",
    "havent": "haven't",
    "isnt": "isn't",
    "shouldnt": "shouldn't",
    "thats": "that's",
    "theres": "there's",
    "theyre": "they're",
    "wasnt": "wasn't",
    "werent": "weren't",
    "whats": "what's",
    "wont": "won't",
    "wouldnt": "wouldn't",
    "youre": "you're",
}

_TYPOS = {
    "letf": "left",
    "let": "left",
    "tehre": "there",
    "rigth": "right",
    "rght": "right",
    "behine": "behind",
    "chai": "chair",
    "wasing": "washing",
    "waslked": "walked",
    "oclock": "o'clock",
    "backwards": "backward",
}

_ARTICLES = frozenset({"a", "an", "the"})

_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d)")
_NON_DECIMAL_PERIOD = re.compile(r"(?<!\d)\.|\.(?!\d)")
_DISALLOWED = re.compile(r"[^a-z0-9'\-\s.]")
_WORD_WITH_INDEX = re.compile(r"^([a-z]+)[0-9]$")
_O_CLOCK = re.compile(r"\bo'\s+clock\b")


def clean_answer(text: str) -> str:
    """Normalise an answer string before exact matching (applied to predictions and references alike).

    Rules, in order (the union of the VQA evaluation normalisation and the ScanQA/SQA3D answer
    cleaning of LEO / 3D-LLM-style evaluators):

    1. lower-case; ``’`` → ``'``; ``ç`` → ``c``; ``o' clock`` → ``o'clock``;
    2. punctuation: a comma between digits is dropped (``1,000`` → ``1000``); a period that is not
       a decimal point is dropped; every other character outside ``[a-z0-9'-]`` and whitespace
       (``, ; : ! ? " / ( ) [ ] { } _ + = < > @ # …``) becomes a space; leading/trailing
       apostrophes and hyphens of a word are stripped;
    3. per word: the frequent ScanQA typos are fixed (``letf``/``let`` → ``left``, ``tehre`` →
       ``there``, ``rigth``/``rght`` → ``right``, ``behine`` → ``behind``, ``chai`` → ``chair``,
       ``wasing`` → ``washing``, ``waslked`` → ``walked``, ``oclock`` → ``o'clock``,
       ``backwards`` → ``backward``);
    4. numbers: the digits ``0``–``20`` become number words (``2`` → ``two``) and ``none`` →
       ``zero``, so "2" and "two" compare equal;
    5. an object index glued to a word is dropped (``chair1`` → ``chair``);
    6. contractions written without the apostrophe get it back (``dont`` → ``don't``, ``isnt`` →
       ``isn't``, …, 21 forms);
    7. the articles ``a``, ``an``, ``the`` are removed;
    8. words are re-joined with single spaces (no leading/trailing space).

    Args:
        text: a raw answer.

    Returns:
        the cleaned answer (possibly ``""``).
    """
    if not isinstance(text, str):
        raise ValueError(f"vidllm/metrics/answer_metrics.py: clean_answer expects a str, got {type(text).__name__}")
    text = text.lower().replace("\u2019", "'").replace("ç", "c")
    text = _O_CLOCK.sub("o'clock", text)
    text = _DIGIT_COMMA.sub("", text)
    text = _DISALLOWED.sub(" ", text)
    text = _NON_DECIMAL_PERIOD.sub("", text)
    words = []
    for raw in text.split():
        word = raw.strip("'-")
        if not word:
            continue
        word = _TYPOS.get(word, word)
        word = _DIGIT_TO_WORD.get(word, word)
        match = _WORD_WITH_INDEX.match(word)
        if match:
            word = match.group(1)
        word = _CONTRACTIONS.get(word, word)
        if word in _ARTICLES:
            continue
        words.append(word)
    return " ".join(words)


def _check_refs(references: Sequence[str], where: str) -> None:
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise ValueError(
            f"vidllm/metrics/answer_metrics.py: {where}: references must be a list of strings, got {type(references).__name__}"
        )


def exact_match(prediction: str, references: Sequence[str]) -> bool:
    """EM@1: the cleaned prediction equals any cleaned reference.

    Args:
        prediction: the model's (top-1) answer.
        references: the reference answers (any of them counts).

    Returns:
        whether it matches.
    """
    _check_refs(references, "exact_match")
    pred = clean_answer(prediction)
    return any(pred == clean_answer(ref) for ref in references)


def refined_exact_match(prediction: str, references: Sequence[str]) -> bool:
    """Refined EM (LEO's ``em_refined``): EM, or one answer contains the other.

    Rule: after :func:`clean_answer` and after deleting all whitespace from both strings, the
    prediction counts as correct if, for some reference, the prediction is a substring of the
    reference or the reference is a substring of the prediction (so "brown" matches
    "dark brown", and "on table" matches "on the table"). Unlike the reference code, an empty
    cleaned prediction or reference never matches by containment (the empty string is a
    substring of everything), and an exact match with any reference is always found.

    Args:
        prediction: the model's answer.
        references: the reference answers.

    Returns:
        whether it matches.
    """
    _check_refs(references, "refined_exact_match")
    pred = clean_answer(prediction)
    pred_compact = "".join(pred.split())
    for ref in references:
        ref_clean = clean_answer(ref)
        if pred == ref_clean:
            return True
        ref_compact = "".join(ref_clean.split())
        if pred_compact and ref_compact and (pred_compact in ref_compact or ref_compact in pred_compact):
            return True
    return False


def qa_exact_match(predictions: Mapping, references: Mapping, groups: Mapping | None = None) -> dict:
    """EM@1 and refined EM over a question set, optionally broken down by question group.

    Args:
        predictions: ``{question_id: answer}``.
        references: ``{question_id: [reference answers]}``; every question must have a prediction.
        groups: optional ``{question_id: group}`` (e.g. the SQA3D question type "what" / "is" / …);
            questions without a group are counted in ``"other"``.

    Returns:
        ``{"em@1": float, "refined_em": float, "count": int}`` (fractions in ``[0, 1]``; ``count``
        is the number of questions; rates are 0 when there are none), plus with ``groups``
        ``"by_group": {group: {"em@1", "refined_em", "count"}}``.
    """
    missing = [qid for qid in references if qid not in predictions]
    if missing:
        raise ValueError(
            f"vidllm/metrics/answer_metrics.py: {len(missing)} question(s) have no prediction, e.g. question_id={missing[0]!r}"
        )
    tallies: dict[str, list[int]] = {}
    em = refined = 0
    for qid, refs in references.items():
        hit = exact_match(predictions[qid], refs)
        hit_refined = hit or refined_exact_match(predictions[qid], refs)
        em += hit
        refined += hit_refined
        if groups is not None:
            tally = tallies.setdefault(str(groups.get(qid, "other")), [0, 0, 0])
            tally[0] += hit
            tally[1] += hit_refined
            tally[2] += 1
    count = len(references)
    result: dict = {
        "em@1": em / count if count else 0.0,
        "refined_em": refined / count if count else 0.0,
        "count": count,
    }
    if groups is not None:
        result["by_group"] = {
            g: {"em@1": t[0] / t[2], "refined_em": t[1] / t[2], "count": t[2]} for g, t in sorted(tallies.items())
        }
    return result


def qa_metrics(
    predictions: Mapping,
    references: Mapping,
    with_captions: bool = True,
    scorer: CaptionScorer | None = None,
    groups: Mapping | None = None,
) -> dict:
    """EM@1, refined EM and (optionally) BLEU-4 / METEOR / ROUGE-L / CIDEr of free-form answers.

    Args:
        predictions: ``{question_id: answer}``.
        references: ``{question_id: [reference answers]}``.
        with_captions: also compute the n-gram metrics on the raw (uncleaned) answers; needs the
            ``eval`` extra (pycocoevalcap) unless ``scorer`` is given.
        scorer: a caption scorer replacing pycocoevalcap (see :func:`caption_metrics`).
        groups: optional ``{question_id: group}`` for an EM breakdown (see :func:`qa_exact_match`).

    Returns:
        the dict of :func:`qa_exact_match`, plus (with ``with_captions``) the keys of
        :meth:`CaptionScores.summary` (``bleu-4``, ``meteor``, ``rouge-l``, ``cider``, ``unavailable``).
    """
    result: dict = dict(qa_exact_match(predictions, references, groups))
    if with_captions:
        preds = {qid: predictions[qid] for qid in references}
        refs = {qid: list(r) for qid, r in references.items()}
        result.update(caption_metrics(preds, refs, scorer=scorer).summary())
    return result
