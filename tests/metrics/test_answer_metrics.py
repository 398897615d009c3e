"""Answer cleaning, EM@1 and refined EM on hand-made answers."""

import pytest

from vidllm.metrics.answer_metrics import clean_answer, exact_match, qa_exact_match, qa_metrics, refined_exact_match
from vidllm.metrics.ngram_metrics import CaptionScores


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("The Brown Chair", "brown chair"),  # lower-case, article
        ("a table and an ottoman", "table and ottoman"),  # articles a / an
        ("brown.", "brown"),  # sentence period
        ("left, near the door!", "left near door"),  # punctuation → space, collapsed
        ("table/chair", "table chair"),
        ("3.5 meters", "3.5 meters"),  # decimal point kept
        ("1,000", "1000"),  # thousands comma dropped
        ("2", "two"),  # digits → words
        ("20 chairs", "twenty chairs"),
        ("none", "zero"),
        ("dont know", "don't know"),  # contraction restored
        ("it\u2019s", "it's"),  # curly apostrophe
        ("letf side", "left side"),  # ScanQA typo
        ("chair1", "chair"),  # glued object index
        ("  many   spaces  ", "many spaces"),
        ("'quoted'", "quoted"),
        ("the", ""),
    ],
)
def test_clean_answer_rules(raw, clean):
    assert clean_answer(raw) == clean


def test_clean_answer_rejects_non_strings():
    with pytest.raises(ValueError, match="expects a str"):
        clean_answer(3)


def test_exact_match_after_cleaning():
    assert exact_match("Two.", ["2", "three"])
    assert exact_match("The white cabinet", ["white cabinet"])
    assert not exact_match("brown", ["dark brown"])
    assert not exact_match("", ["chair"])
    with pytest.raises(ValueError, match="list of strings"):
        exact_match("chair", "chair")


def test_refined_exact_match_containment_rule():
    assert refined_exact_match("brown", ["dark brown"])  # prediction inside reference
    assert refined_exact_match("it is a dark brown chair", ["dark brown"])  # reference inside prediction
    assert refined_exact_match("coffeetable", ["coffee table"])  # whitespace is ignored for containment
    assert not refined_exact_match("black", ["dark brown", "white"])
    assert not refined_exact_match("", ["chair"])  # empty never matches by containment
    assert not refined_exact_match("the", ["chair"])  # cleans to ""


def test_exact_match_found_on_a_later_reference():
    # the containment match on the first reference must not hide an exact match on the second
    assert exact_match("chair", ["office chair", "chair"])
    assert refined_exact_match("chair", ["office chair", "chair"])


def test_qa_exact_match_aggregate():
    preds = {"q1": "Two", "q2": "brown", "q3": "sofa"}
    refs = {"q1": ["2"], "q2": ["dark brown"], "q3": ["table"]}
    m = qa_exact_match(preds, refs)
    assert m == {"em@1": pytest.approx(1 / 3), "refined_em": pytest.approx(2 / 3), "count": 3}
    by = qa_exact_match(preds, refs, groups={"q1": "how many", "q2": "what"})["by_group"]
    assert by["how many"] == {"em@1": 1.0, "refined_em": 1.0, "count": 1}
    assert by["what"] == {"em@1": 0.0, "refined_em": 1.0, "count": 1}
    assert by["other"] == {"em@1": 0.0, "refined_em": 0.0, "count": 1}
    with pytest.raises(ValueError, match="question_id='q4'"):
        qa_exact_match(preds, {**refs, "q4": ["x"]})


def test_qa_metrics_with_injected_caption_scorer():
    seen = {}

    def scorer(cands, refs):
        seen.update(cands)
        return CaptionScores(overall={"bleu-4": 0.5, "rouge-l": 0.25, "cider": 1.5}, unavailable={"meteor": "test"})

    m = qa_metrics({"q1": "Two", "q2": "sofa"}, {"q1": ["2"], "q2": ["table"]}, scorer=scorer)
    assert m["em@1"] == 0.5 and m["refined_em"] == 0.5
    assert m["bleu-4"] == 0.5 and m["cider"] == 1.5 and m["meteor"] is None
    assert m["unavailable"] == {"meteor": "test"}
    assert seen == {"q1": "Two", "q2": "sofa"}  # n-gram metrics see the raw answers


def test_question_type_prior_baseline_by_hand():
    from vidllm.evaluation.qa import majority_answer_baseline, question_type, type_prior_baseline

    assert question_type("What  color is the chair?") == "what color"
    train = [
        ("how many chairs are there?", ["1"]),
        ("how many beds are there?", ["one"]),
        ("how many lamps are there?", ["two"]),
        ("where is the bed?", ["next to the lamp", "against the wall"]),
        ("where is the desk?", ["in the corner", "against the wall"]),
        ("where is the sofa?", ["next to the desk"]),
        ("what color is the desk?", ["red"]),
    ]
    val = {
        "a": ("how many desks are there?", ["one"]),  # 'one' (accepted by 2 of 3 training how-many questions)
        "b": ("where is the chair?", ["next to bed", "against wall"]),  # 'against wall' (accepted by 2 of 3)
        "c": ("what color is the bed?", ["blue"]),  # 'red' is wrong
        "d": ("which is the tallest object?", ["one"]),  # unseen type: overall most accepted answer, 'one'
    }
    res = type_prior_baseline(train, val)
    assert res["answers"] == {"how many": "one", "what color": "red", "where is": "against wall"}
    assert res["em@1"] == pytest.approx(3 / 4)
    assert res["em@1_by_type"] == {"how many": 1.0, "what color": 0.0, "where is": 1.0, "which is": 1.0}
    # the majority baseline counts only the first answers: 'one' (2 of 7) → right on a and d only
    maj = majority_answer_baseline([a[0] for _, a in train], {q: a for q, (_, a) in val.items()})
    assert maj["answer"] == "one" and maj["em@1"] == pytest.approx(2 / 4)
    assert type_prior_baseline([], val)["em@1"] == 0.0


def test_visible_color_em_by_hand():
    from vidllm.evaluation.qa import visible_color_em

    rows = [
        {"question": "what color is the chair?", "prediction": "red", "answers": ["red"], "targets_visible": True},
        {
            "question": "What color is the box next to the blue desk?",
            "prediction": "the blue",
            "answers": ["blue"],
            "targets_visible": True,
        },
        {"question": "what color is the lamp?", "prediction": "green", "answers": ["white"], "targets_visible": True},
        {
            "question": "what color is the sofa?",
            "prediction": "red",
            "answers": ["red"],
            "targets_visible": False,
        },  # not visible: left out
        {
            "question": "how many chairs are in the room?",
            "prediction": "one",
            "answers": ["one"],
            "targets_visible": True,
        },  # other type
        {
            "question": "what color is the bed?",
            "prediction": "red",
            "answers": ["red"],
            "targets_visible": None,
        },  # names no object
    ]
    assert visible_color_em(rows) == {"em@1": pytest.approx(2 / 3), "count": 3}
    assert visible_color_em(rows[3:4]) == {"em@1": None, "count": 0}
