"""Caption metrics wrapper (pycocoevalcap optional) and the Scan2Cap m@kIoU protocol."""

import shutil
import sys

import pytest

from vidllm.errors import VidLLMError
from vidllm.metrics.dense_caption_metrics import m_at_k_iou, scan2cap_candidates, scan2cap_key, scan2cap_metrics
from vidllm.metrics.ngram_metrics import CaptionScores, MissingExtraError, caption_metrics, simple_tokenize


def _pycocoevalcap_installed() -> bool:
    try:
        import pycocoevalcap.bleu.bleu  # noqa: F401
    except ImportError:
        return False
    return True


def _hide_pycocoevalcap(monkeypatch):
    for name in [m for m in sys.modules if m == "pycocoevalcap" or m.startswith("pycocoevalcap.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "pycocoevalcap", None)


def test_missing_extra_error_names_the_extra(monkeypatch):
    _hide_pycocoevalcap(monkeypatch)
    with pytest.raises(MissingExtraError, match=r"vidllm\[eval\]") as info:
        caption_metrics({"a": "a chair"}, {"a": ["a chair"]})
    assert isinstance(info.value, ImportError) and isinstance(info.value, VidLLMError)
    with pytest.raises(MissingExtraError, match="pycocoevalcap"):
        scan2cap_metrics({"a": "x"}, {"a": 0.9}, {"a": ["x"]})


def test_input_validation():
    with pytest.raises(ValueError, match="no candidate caption for id 'b'"):
        caption_metrics({"a": "x"}, {"a": ["x"], "b": ["y"]})
    with pytest.raises(ValueError, match="non-empty list"):
        caption_metrics({"a": "x"}, {"a": []})
    with pytest.raises(ValueError, match="refs is empty"):
        caption_metrics({}, {})


def test_simple_tokenize_drops_punctuation():
    assert simple_tokenize("The chair, near the wall.") == "the chair near the wall"
    assert simple_tokenize("It\u2019s (brown)!") == "it's brown"


def test_caption_metrics_without_java():
    preds = {"a": "the brown chair is next to the table", "b": "sofa"}
    refs = {"a": ["the brown chair is next to the table"], "b": ["a lamp on the desk"]}
    if not _pycocoevalcap_installed():
        with pytest.raises(MissingExtraError):
            caption_metrics(preds, refs, use_java=False)
        return
    scores = caption_metrics(preds, refs, use_java=False)
    assert "meteor" in scores.unavailable and "meteor" not in scores.overall
    assert "ptb_tokenizer" in scores.unavailable
    assert scores.per_item["bleu-4"]["a"] == pytest.approx(1.0, abs=1e-6)  # identical caption
    assert scores.per_item["rouge-l"]["a"] == pytest.approx(1.0)
    assert scores.per_item["bleu-4"]["b"] < 1e-3 and scores.per_item["cider"]["b"] == 0.0
    assert list(scores.per_item["cider"]) == ["a", "b"]
    summary = scores.summary()
    assert summary["meteor"] is None and set(summary) == {"bleu-4", "meteor", "rouge-l", "cider", "unavailable"}


@pytest.mark.slow
def test_caption_metrics_with_java_meteor():
    preds = {"a": "The brown chair.", "b": ""}
    refs = {"a": ["the brown chair", "a brown chair"], "b": ["a lamp"]}
    if not _pycocoevalcap_installed():
        with pytest.raises(MissingExtraError):
            caption_metrics(preds, refs)
        return
    scores = caption_metrics(preds, refs)
    if shutil.which("java") is None:
        assert "meteor" in scores.unavailable and "meteor" not in scores.overall
        return
    assert scores.unavailable == {}
    assert scores.per_item["meteor"]["a"] > 0.9 and scores.per_item["meteor"]["b"] == 0.0
    assert scores.per_item["bleu-1"]["a"] == pytest.approx(1.0, abs=1e-6)  # PTB tokenizer dropped the period


def test_broken_java_reports_meteor_unavailable(monkeypatch, tmp_path):
    preds, refs = {"a": "a brown chair"}, {"a": ["a brown chair"]}
    if not _pycocoevalcap_installed():
        with pytest.raises(MissingExtraError):
            caption_metrics(preds, refs, use_java=True)
        return
    monkeypatch.setenv("PATH", str(tmp_path))  # asked to use Java, but no java executable can be started
    scores = caption_metrics(preds, refs, use_java=True)
    assert set(scores.unavailable) == {"java", "ptb_tokenizer", "meteor"}
    assert scores.overall["rouge-l"] == pytest.approx(1.0)


def _exact_scorer(calls):
    """A stand-in scorer: every metric is 1 for a candidate equal to its first reference, else 0."""

    def scorer(cands, refs):
        calls.append(dict(cands))
        items = {k: float(cands[k] == refs[k][0]) for k in refs}
        per_item = {name: dict(items) for name in ("bleu-4", "meteor", "rouge-l", "cider")}
        overall = {name: sum(items.values()) / len(items) for name in per_item}
        return CaptionScores(overall=overall, per_item=per_item)

    return scorer


def test_scan2cap_iou_gate_and_masked_mean():
    refs = {scan2cap_key("s0", i): [f"caption {i}"] for i in range(4)}
    preds = {scan2cap_key("s0", i): f"caption {i}" for i in range(3)}  # object 3 has no prediction
    ious = {"s0|0": 0.7, "s0|1": 0.4, "s0|2": 0.5}
    cands, ind = scan2cap_candidates(preds, ious, refs)
    assert cands == {"s0|0": "caption 0", "s0|1": "", "s0|2": "caption 2", "s0|3": ""}
    assert ind == {"s0|0": 1.0, "s0|1": 0.0, "s0|2": 1.0, "s0|3": 0.0}  # IoU 0.5 counts (inclusive)
    calls = []
    m = scan2cap_metrics(preds, ious, refs, scorer=_exact_scorer(calls))
    # objects 0 and 2 score 1; object 1 (IoU 0.4) and 3 (missing) score 0 → 2 / 4
    assert m["cider@0.5"] == pytest.approx(0.5) and m["bleu-4@0.5"] == pytest.approx(0.5)
    assert m["count"] == 4 and m["matched"] == 2
    assert calls[0]["s0|1"] == ""  # the gated caption was scored as empty
    m25 = scan2cap_metrics(preds, ious, refs, iou_threshold=0.25, scorer=_exact_scorer([]))
    assert m25["cider@0.25"] == pytest.approx(0.75)


def test_m_at_k_iou_formula():
    per_item = {"a": 2.0, "b": 1.0, "c": 0.5}
    assert m_at_k_iou(per_item, {"a": 1.0, "b": 0.0, "c": 1.0}) == pytest.approx((2.0 + 0.5) / 3)
    assert m_at_k_iou(per_item, {}) == 0.0
    with pytest.raises(ValueError, match="'d'"):
        m_at_k_iou(per_item, {"d": 1.0})
