"""n-gram caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr) through pycocoevalcap (the ``eval`` extra).

pycocoevalcap is imported lazily, only when a score is asked for. Its PTB tokenizer and METEOR
run Java: without a ``java`` executable the captions are tokenized in Python with the same rule
(lower-case, split on whitespace after separating punctuation, drop the PTB punctuation tokens)
and METEOR is reported as unavailable (``None`` plus a reason) instead of failing.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from vidllm.errors import VidLLMError

__all__ = [
    "CaptionScores",
    "CaptionScorer",
    "MissingExtraError",
    "caption_metrics",
    "simple_tokenize",
    "CAPTION_METRICS",
]

CAPTION_METRICS = ("bleu-1", "bleu-2", "bleu-3", "bleu-4", "meteor", "rouge-l", "cider")
"""Names of the scores :func:`caption_metrics` returns (fractions; CIDEr is on its usual 0–10 scale)."""

_SUMMARY_METRICS = ("bleu-4", "meteor", "rouge-l", "cider")

# The punctuation tokens pycocoevalcap's PTBTokenizer drops after tokenizing (brackets and double
# quotes reach it as -LRB- / -RRB- / `` / '' and are dropped too).
_PTB_PUNCTUATION = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
    + ["(", ")", "[", "]", "{", "}", '"']
)
_SPLIT_PUNCT = re.compile(r"([.,!?;:()\[\]{}\"`]|--|\.\.\.)")


class MissingExtraError(VidLLMError, ImportError):
    """An optional dependency (a ``pip install 'vidllm[extra]'`` group) is not installed."""


@dataclass
class CaptionScores:
    """Scores of a set of candidate captions against their references.

    Attributes:
        overall: ``{metric: corpus score}`` for the metrics of :data:`CAPTION_METRICS` that could be
            computed (pycocoevalcap's corpus-level values).
        per_item: ``{metric: {id: score}}`` per candidate, in the order of the references.
        unavailable: ``{metric | "ptb_tokenizer" | "java": reason}`` for what could not run (e.g. no Java).
    """

    overall: dict[str, float]
    per_item: dict[str, dict] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict:
        """``{"bleu-4", "meteor", "rouge-l", "cider": float | None, "unavailable": {...}}`` (JSON-ready)."""
        out: dict = {name: self.overall.get(name) for name in _SUMMARY_METRICS}
        out["unavailable"] = dict(self.unavailable)
        return out


CaptionScorer = Callable[[dict, dict], CaptionScores]
"""``scorer(preds {id: str}, refs {id: [str, ...]}) -> CaptionScores``: a replacement for pycocoevalcap."""


def simple_tokenize(text: str) -> str:
    """Java-free stand-in for the PTB tokenizer: lower-case, split off punctuation, drop punctuation tokens.

    Args:
        text: a caption.

    Returns:
        space-joined tokens.
    """
    text = _SPLIT_PUNCT.sub(r" \1 ", text.lower().replace("\u2019", "'"))
    return " ".join(tok for tok in text.split() if tok not in _PTB_PUNCTUATION)


def _validate(preds: Mapping, refs: Mapping) -> None:
    if not refs:
        raise ValueError("vidllm/metrics/ngram_metrics.py: no references to score against (refs is empty)")
    for key, ref_list in refs.items():
        if key not in preds:
            raise ValueError(f"vidllm/metrics/ngram_metrics.py: no candidate caption for id {key!r}")
        if not isinstance(preds[key], str):
            raise ValueError(
                f"vidllm/metrics/ngram_metrics.py: candidate for id {key!r} is {type(preds[key]).__name__}, expected str"
            )
        if isinstance(ref_list, str) or not isinstance(ref_list, Sequence) or len(ref_list) == 0:
            raise ValueError(
                f"vidllm/metrics/ngram_metrics.py: references for id {key!r} must be a non-empty list of strings"
            )
        if not all(isinstance(r, str) for r in ref_list):
            raise ValueError(f"vidllm/metrics/ngram_metrics.py: references for id {key!r} must all be strings")


def _import_pycocoevalcap():
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.meteor.meteor import Meteor
        from pycocoevalcap.rouge.rouge import Rouge
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    except ImportError as exc:
        raise MissingExtraError(
            "vidllm/metrics/ngram_metrics.py: BLEU/METEOR/ROUGE-L/CIDEr need pycocoevalcap, which is not installed; "
            "install the 'eval' extra: pip install 'vidllm[eval]' (or pip install pycocoevalcap)"
        ) from exc
    return Bleu, Meteor, Rouge, Cider, PTBTokenizer


def caption_metrics(
    preds: Mapping,
    refs: Mapping,
    scorer: CaptionScorer | None = None,
    use_java: bool | None = None,
) -> CaptionScores:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr of candidate captions (pycocoevalcap, COCO protocol).

    Args:
        preds: ``{id: candidate caption}``; must hold every id of ``refs`` (extra ids are ignored).
        refs: ``{id: [reference captions]}`` (non-empty lists).
        scorer: a replacement scorer (same contract); pycocoevalcap is then not imported.
        use_java: run the Java PTB tokenizer and METEOR; ``None`` = when a ``java`` executable is found.

    Returns:
        :class:`CaptionScores`; METEOR is missing from ``overall`` and listed in ``unavailable`` when
        Java is absent or fails.

    Raises:
        MissingExtraError: pycocoevalcap is not installed and no ``scorer`` was given.
    """
    _validate(preds, refs)
    keys = list(refs)
    cand = {k: preds[k] for k in keys}
    ref = {k: list(refs[k]) for k in keys}
    if scorer is not None:
        return scorer(cand, ref)
    Bleu, Meteor, Rouge, Cider, PTBTokenizer = _import_pycocoevalcap()
    unavailable: dict[str, str] = {}
    java_found = shutil.which("java") is not None
    if use_java is None:
        use_java = java_found
    elif use_java and not java_found:
        use_java = False
        unavailable["java"] = "use_java=True but no java executable is on PATH"
    tokenized = None
    if use_java:
        try:
            tokenizer = PTBTokenizer()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                gts = tokenizer.tokenize({k: [{"caption": c} for c in ref[k]] for k in keys})
                res = tokenizer.tokenize({k: [{"caption": cand[k]}] for k in keys})
            tokenized = (gts, res)
        except Exception as exc:  # any Java/subprocess failure: fall back to Python tokenization
            unavailable["ptb_tokenizer"] = (
                f"Java PTB tokenizer failed ({type(exc).__name__}: {exc}); used the Python tokenizer"
            )
    else:
        unavailable["ptb_tokenizer"] = "no java executable; used the Python tokenizer"
    if tokenized is None:
        tokenized = (
            {k: [simple_tokenize(c) for c in ref[k]] for k in keys},
            {k: [simple_tokenize(cand[k])] for k in keys},
        )
    gts, res = tokenized

    overall: dict[str, float] = {}
    per_item: dict[str, dict] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        bleu, bleu_items = Bleu(4).compute_score(gts, res)
    for n in range(4):
        overall[f"bleu-{n + 1}"] = float(bleu[n])
        per_item[f"bleu-{n + 1}"] = {k: float(s) for k, s in zip(keys, bleu_items[n])}
    for name, metric in (("rouge-l", Rouge()), ("cider", Cider())):
        score, items = metric.compute_score(gts, res)
        overall[name] = float(score)
        per_item[name] = {k: float(s) for k, s in zip(keys, items)}
    if use_java:
        # METEOR's stdio protocol separates fields with "|||" and lines with newlines: keep both out.
        gts_m = {k: [" ".join(c.replace("|", " ").split()) for c in v] for k, v in gts.items()}
        res_m = {k: [" ".join(c.replace("|", " ").split()) for c in v] for k, v in res.items()}
        meteor = None
        try:
            meteor = Meteor()
            score, items = meteor.compute_score(gts_m, res_m)
            overall["meteor"] = float(score)
            per_item["meteor"] = {k: float(s) for k, s in zip(keys, items)}
        except Exception as exc:  # METEOR is optional: report it, never crash
            unavailable["meteor"] = f"METEOR failed ({type(exc).__name__}: {exc})"
        finally:
            del meteor  # its __del__ stops the Java process
    else:
        unavailable["meteor"] = "METEOR needs Java (no java executable found)"
    return CaptionScores(overall=overall, per_item=per_item, unavailable=unavailable)
