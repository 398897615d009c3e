"""The demo's checks and results rows (vidllm.synthetic.demo.demo_report) on a hand-made evaluation."""

from __future__ import annotations

import copy

import pytest

from vidllm.synthetic.demo.demo_report import CHECKS, metric_rows, threshold_checks


def _run(acc=0.5, qa=0.7, colour=0.4, rra=0.95, absrel=0.08):
    return {
        "scanrefer_gt": {
            "overall": {"acc@0.25": acc, "acc@0.5": acc / 2, "count": 10},
            "chance": 0.1,
            "chance@0.5": 0.1,
            "visible": {"acc@0.25": 0.6, "acc@0.5": 0.3, "count": 4, "chance": 0.12, "chance@0.5": 0.11},
        },
        "scanrefer_none": {"overall": {"acc@0.25": 0.2, "acc@0.5": 0.1}},
        "scanqa": {"em@1": qa, "refined_em": qa, "what_color_visible": {"em@1": colour, "count": 5}},
        "recon": {
            "depth": {
                "aligned": {"abs_rel": absrel, "delta1": 0.9},
                "metric_head": {"abs_rel": 0.09, "delta1": 0.88},
                "relative_median": {"abs_rel": 0.05},
            },
            "pose": {"rra@15": rra, "rta@15": 0.5, "auc@30": 0.4, "num_pairs": 112},
            "pose_by_order": {
                "forward": {"rra@15": 0.99, "rta@15": 0.6, "auc@30": 0.5},
                "reversed": {"rra@15": 0.91, "rta@15": 0.4, "auc@30": 0.3},
            },
            "pose_static_baseline": {
                "rra@15": 0.35,
                "by_order": {"forward": {"rra@15": 0.35}, "reversed": {"rra@15": 0.35}},
            },
            "pointcloud": {"fscore": 0.3, "chamfer": 0.2},
        },
    }


def _ev(**trained):
    return {
        "trained": _run(**trained),
        "untrained": _run(0.1, 0.2, 0.1, 0.3, 0.5),
        "majority_answer": {"answer": "one", "em@1": 0.3, "refined_em": 0.3},
        "type_prior": {"em@1": 0.55, "em@1_by_type": {"what color": 0.09}, "answers": {"what color": "red"}},
    }


def test_checks_pass_and_miss_at_their_thresholds():
    checks = threshold_checks(_ev())
    assert list(checks) == list(CHECKS) and all(c["pass"] for c in checks.values())
    assert {k: c["baseline"] for k, c in checks.items()} == {
        CHECKS[0]: 0.35,
        CHECKS[1]: 0.1,
        CHECKS[2]: 0.55,
        CHECKS[3]: 0.09,
        CHECKS[4]: 0.09,
    }
    misses = threshold_checks(_ev(acc=0.29, qa=0.64, colour=0.29, rra=0.89, absrel=0.085))
    assert [c["pass"] for c in misses.values()] == [False, False, False, False, True]
    assert not threshold_checks(_ev(absrel=0.091))[CHECKS[4]]["pass"]  # <= 0.10 but worse than the metric head alone
    ev = _ev()
    ev["trained"]["scanqa"]["what_color_visible"] = {"em@1": None, "count": 0}
    assert threshold_checks(ev)[CHECKS[3]] == pytest.approx(
        {
            "value": None,
            "baseline": 0.09,
            "baseline_name": "question-type prior on 'what color'",
            "rule": ">= 0.300",
            "pass": False,
        }
    )


def test_rows_carry_forward_reversed_and_visible_figures():
    rows = {r["metric"]: r for r in metric_rows(_ev())}
    assert rows["camera RRA@15"]["trained"] == 0.95 and rows["camera RRA@15"]["baseline"] == 0.35
    assert (
        rows["camera RRA@15 (reversed clips)"]["trained"] == 0.91
        and rows["camera RRA@15 (forward clips)"]["untrained"] == 0.99
    )
    assert rows["grounding Acc@0.25 (GT proposals, target visible in the clip)"]["baseline"] == 0.12
    assert rows["QA 'what color' EM@1 (target visible in the clip)"]["trained"] == 0.4
    old = copy.deepcopy(_ev())  # an evaluation from before the new figures still renders
    for run in ("trained", "untrained"):
        del (
            old[run]["recon"]["pose_by_order"],
            old[run]["scanrefer_gt"]["visible"],
            old[run]["scanqa"]["what_color_visible"],
        )
    assert "camera RRA@15 (forward clips)" not in {r["metric"] for r in metric_rows(old)}
