"""A short `vidllm demo` end to end (slow): every step runs, every report file exists, and the
report's numbers are the metrics files' numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_fits() -> list[list[str]]:
    """The argument lists the demo run passed to :func:`vidllm.training.fit.fit`, in order."""
    return []


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, demo_fits):
    from vidllm.cli import main
    from vidllm.synthetic.demo import pipeline

    out = tmp_path_factory.mktemp("demo")
    real = pipeline.fit

    def recording_fit(argv, mode="fit"):
        demo_fits.append(list(argv))
        return real(argv, mode)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "fit", recording_fit)
        code = main(["demo", "--out", str(out), "--scenes", "4", "--minutes", "0.25", "--eval-limit", "6"])
    assert code == 0
    return out


def test_reported_training_commands_are_the_runs(demo_run, demo_fits):
    import shlex

    commands = json.loads((demo_run / "summary.json").read_text())["commands"]
    assert len(demo_fits) == 2
    for name, argv in zip(("stage1", "stage2"), demo_fits):
        assert shlex.split(commands[name]) == ["vidllm", "fit", *argv]
        assert commands[name] in (demo_run / "report.md").read_text()


def test_every_step_ran_and_wrote_its_files(demo_run):
    from vidllm.synthetic.demo.pipeline import STEPS

    summary = json.loads((demo_run / "summary.json").read_text())
    assert set(summary["wall_seconds"]) == set(STEPS) - {"report"}
    assert all(v > 0 for v in summary["wall_seconds"].values())
    for path in (
        "report.md",
        "config.yaml",
        "teachers/geometry/model.pt",
        "teachers/semantic/config.json",
        "stage1/model/model.safetensors",
        "stage2/model/model.safetensors",
        "stage1/csv/metrics.csv",
        "stage2/csv/metrics.csv",
        "export/scene.ply",
        "export/scene.png",
        "export/depth.png",
        "export/answers.json",
        "training_curves.png",
    ):
        assert (demo_run / path).is_file(), path
    for run in ("trained", "untrained"):
        for task in ("scanrefer_gt", "scanrefer_none", "scanqa", "recon"):
            assert (demo_run / "eval" / run / task / "metrics.json").is_file()
    assert len(json.loads((demo_run / "export" / "answers.json").read_text())) == 3
    report = (demo_run / "report.md").read_text()
    for picture in summary["pictures"].values():
        assert Path(picture).is_file() and Path(picture).name in report
    assert "## Thresholds" in report and "vidllm fit --stage 2" in report
    from vidllm.synthetic.demo.demo_report import CHECKS

    assert list(summary["thresholds"]) == list(CHECKS)
    for name, check in summary[
        "thresholds"
    ].items():  # each check: value, baseline, verdict — in the summary and the report
        assert {"value", "baseline", "baseline_name", "rule", "pass"} <= set(check)
        assert any(
            line.startswith(f"| {name} |") and ("| pass |" in line or "| MISS |" in line)
            for line in report.splitlines()
        )


def test_report_numbers_equal_the_metrics_files(demo_run):
    summary = json.loads((demo_run / "summary.json").read_text())
    rows = {r["metric"]: r for r in summary["metrics"]}
    for run in ("trained", "untrained"):
        sr = json.loads((demo_run / "eval" / run / "scanrefer_gt" / "metrics.json").read_text())
        free = json.loads((demo_run / "eval" / run / "scanrefer_none" / "metrics.json").read_text())
        qa = json.loads((demo_run / "eval" / run / "scanqa" / "metrics.json").read_text())
        rec = json.loads((demo_run / "eval" / run / "recon" / "metrics.json").read_text())
        assert rows["grounding Acc@0.25 (GT proposals)"][run] == sr["overall"]["acc@0.25"]
        assert rows["grounding Acc@0.5 (proposal-free)"][run] == free["overall"]["acc@0.5"]
        assert rows["QA EM@1"][run] == qa["em@1"]
        assert rows["depth AbsRel (aligned, metric)"][run] == rec["depth"]["aligned"]["abs_rel"]
        assert rows["camera RRA@15"][run] == rec["pose"]["rra@15"]  # forwards and reversed clips together
        for order in ("forward", "reversed"):
            assert rows[f"camera RRA@15 ({order} clips)"][run] == rec["pose_by_order"][order]["rra@15"]
        assert rows["grounding Acc@0.25 (GT proposals, target visible in the clip)"][run] == sr["visible"]["acc@0.25"]
        assert rows["QA 'what color' EM@1 (target visible in the clip)"][run] == qa["what_color_visible"]["em@1"]
        assert rows["point cloud F-score @5 cm"][run] == rec["pointcloud"]["fscore"]
        if run == "trained":
            assert rows["grounding Acc@0.25 (GT proposals)"]["baseline"] == sr["chance"]
            assert rows["depth AbsRel (aligned, metric)"]["baseline"] == rec["depth"]["metric_head"]["abs_rel"]
            assert rows["camera RRA@15"]["baseline"] == rec["pose_static_baseline"]["rra@15"]
            assert rows["QA EM@1 (vs question-type prior)"]["trained"] == qa["em@1"]
            assert rows["QA EM@1 (vs question-type prior)"]["baseline"] == summary["evaluation"]["type_prior"]["em@1"]
    report = (demo_run / "report.md").read_text()
    qa_trained = json.loads((demo_run / "eval" / "trained" / "scanqa" / "metrics.json").read_text())
    qa_row = next(line for line in report.splitlines() if line.startswith("| QA EM@1 |"))
    assert f"{rows['QA EM@1']['trained']:.3f}" in qa_row
    qtype, figures = next(iter(qa_trained["em@1_by_type"].items()))
    by_type = next(line for line in report.splitlines() if line.startswith(f"| {qtype} |"))
    assert f"| {figures['count']} | {figures['em@1']:.3f} |" in by_type
    checks = summary["thresholds"]
    camera = checks["camera RRA@15 >= 0.90 (forwards and reversed clips)"]
    assert (
        camera["value"] == rows["camera RRA@15"]["trained"] and camera["baseline"] == rows["camera RRA@15"]["baseline"]
    )
    assert camera["pass"] == (rows["camera RRA@15"]["trained"] >= 0.9)
    qa_check = checks["QA EM@1 >= question-type prior + 0.10"]
    assert qa_check["baseline"] == summary["evaluation"]["type_prior"]["em@1"]
    assert qa_check["pass"] == (qa_trained["em@1"] >= summary["evaluation"]["type_prior"]["em@1"] + 0.1)
