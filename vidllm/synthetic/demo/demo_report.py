"""Demo step 'report': ``summary.json`` (every metric with its baseline, wall times, thresholds) and
``report.md`` (results table, pictures, the commands that reproduce each step)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vidllm.evaluation.outputs import write_json
from vidllm.io import atomic_write
from vidllm.machine import machine_info

__all__ = ["write_report", "metric_rows", "threshold_checks", "qa_type_lines", "CHECKS"]


def _get(d: dict, *keys):
    """``d[k0][k1]...`` or None when a key is missing (runs evaluated before a metric existed)."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def metric_rows(ev: dict) -> list[dict]:
    """The results table: one row per metric with the trained model, the untrained model and the task baseline."""
    t, u = ev["trained"], ev["untrained"]
    rows = []

    def add(name, trained, untrained, baseline=None, baseline_name="", higher_is_better=True):
        rows.append(
            {
                "metric": name,
                "trained": trained,
                "untrained": untrained,
                "baseline": baseline,
                "baseline_name": baseline_name,
                "higher_is_better": higher_is_better,
            }
        )

    g, gu = t["scanrefer_gt"], u["scanrefer_gt"]
    add(
        "grounding Acc@0.25 (GT proposals)",
        g["overall"]["acc@0.25"],
        gu["overall"]["acc@0.25"],
        g["chance"],
        "chance (mean 1/#proposals)",
    )
    add(
        "grounding Acc@0.5 (GT proposals)",
        g["overall"]["acc@0.5"],
        gu["overall"]["acc@0.5"],
        g["chance@0.5"],
        "random proposal",
    )
    if "visible" in g:
        share = f"{g['visible']['count']} of {g['overall']['count']} queries"
        add(
            "grounding Acc@0.25 (GT proposals, target visible in the clip)",
            g["visible"]["acc@0.25"],
            _get(gu, "visible", "acc@0.25"),
            g["visible"]["chance"],
            f"chance (mean 1/#proposals); {share}",
        )
        add(
            "grounding Acc@0.5 (GT proposals, target visible in the clip)",
            g["visible"]["acc@0.5"],
            _get(gu, "visible", "acc@0.5"),
            g["visible"]["chance@0.5"],
            "random proposal",
        )
    n, nu = t["scanrefer_none"], u["scanrefer_none"]
    add("grounding Acc@0.25 (proposal-free)", n["overall"]["acc@0.25"], nu["overall"]["acc@0.25"])
    add("grounding Acc@0.5 (proposal-free)", n["overall"]["acc@0.5"], nu["overall"]["acc@0.5"])
    add(
        "QA EM@1",
        t["scanqa"]["em@1"],
        u["scanqa"]["em@1"],
        ev["majority_answer"]["em@1"],
        f"majority answer ('{ev['majority_answer']['answer']}')",
    )
    add(
        "QA refined EM",
        t["scanqa"]["refined_em"],
        u["scanqa"]["refined_em"],
        ev["majority_answer"].get("refined_em"),
        "majority answer",
    )
    if "type_prior" in ev:
        add(
            "QA EM@1 (vs question-type prior)",
            t["scanqa"]["em@1"],
            u["scanqa"]["em@1"],
            ev["type_prior"]["em@1"],
            "text-only: the most accepted training answer per question type",
        )
    if "what_color_visible" in t["scanqa"]:
        add(
            "QA 'what color' EM@1 (target visible in the clip)",
            t["scanqa"]["what_color_visible"]["em@1"],
            _get(u, "scanqa", "what_color_visible", "em@1"),
            _get(ev, "type_prior", "em@1_by_type", "what color"),
            f"question-type prior on 'what color' ({t['scanqa']['what_color_visible']['count']} questions)",
        )
    d, du = t["recon"]["depth"], u["recon"]["depth"]
    add(
        "depth AbsRel (aligned, metric)",
        d["aligned"]["abs_rel"],
        du["aligned"]["abs_rel"],
        d["metric_head"]["abs_rel"],
        "metric head alone",
        False,
    )
    add(
        "depth δ1 (aligned, metric)",
        d["aligned"]["delta1"],
        du["aligned"]["delta1"],
        d["metric_head"]["delta1"],
        "metric head alone",
    )
    add(
        "depth AbsRel (relative, median-scaled)",
        d["relative_median"]["abs_rel"],
        du["relative_median"]["abs_rel"],
        None,
        "",
        False,
    )
    p, pu = t["recon"]["pose"], u["recon"]["pose"]
    static = _get(t, "recon", "pose_static_baseline", "rra@15")
    static_name = "static camera (every frame at frame 0's pose)"
    add("camera RRA@15", p["rra@15"], pu["rra@15"], static, static_name if static is not None else "")
    add("camera RTA@15", p["rta@15"], pu["rta@15"])
    add("camera AUC@30", p["auc@30"], pu["auc@30"])
    for order in ("forward", "reversed"):
        po = _get(t, "recon", "pose_by_order", order)
        if po is None:
            continue
        so = _get(t, "recon", "pose_static_baseline", "by_order", order, "rra@15")
        add(
            f"camera RRA@15 ({order} clips)",
            po["rra@15"],
            _get(u, "recon", "pose_by_order", order, "rra@15"),
            so,
            static_name,
        )
        add(f"camera RTA@15 ({order} clips)", po["rta@15"], _get(u, "recon", "pose_by_order", order, "rta@15"))
        add(f"camera AUC@30 ({order} clips)", po["auc@30"], _get(u, "recon", "pose_by_order", order, "auc@30"))
    c, cu = t["recon"]["pointcloud"], u["recon"]["pointcloud"]
    add("point cloud F-score @5 cm", c["fscore"], cu["fscore"])
    add("point cloud Chamfer (m)", c["chamfer"], cu["chamfer"], None, "", False)
    return rows


CHECKS = (
    "camera RRA@15 >= 0.90 (forwards and reversed clips)",
    "grounding Acc@0.25 (GT proposals) >= 3x chance",
    "QA EM@1 >= question-type prior + 0.10",
    "QA 'what color' EM@1 (target visible) >= 0.30",
    "metric depth AbsRel <= 0.10 and < metric head alone",
)


def threshold_checks(ev: dict) -> dict:
    """The demo's acceptance checks (:data:`CHECKS`) on the trained model: each with its ``value``,
    ``baseline`` (and ``baseline_name``), ``rule`` and ``pass``. A missing figure (e.g. no visible
    colour question) is a miss with value None."""
    t = ev["trained"]
    g = t["scanrefer_gt"]
    depth = t["recon"]["depth"]
    prior = _get(ev, "type_prior", "em@1")
    color = _get(t, "scanqa", "what_color_visible", "em@1")
    rra = t["recon"]["pose"]["rra@15"]
    acc, chance = g["overall"]["acc@0.25"], g["chance"]
    qa = t["scanqa"]["em@1"]
    absrel, head = depth["aligned"]["abs_rel"], depth["metric_head"]["abs_rel"]

    def check(value, baseline, baseline_name, rule, ok):
        return {
            "value": value,
            "baseline": baseline,
            "baseline_name": baseline_name,
            "rule": rule,
            "pass": bool(value is not None and ok),
        }

    static = _get(t, "recon", "pose_static_baseline", "rra@15")
    return dict(
        zip(
            CHECKS,
            (
                check(rra, static, "static camera", ">= 0.900", rra >= 0.90),
                check(
                    acc,
                    chance,
                    "chance (mean 1/#proposals)",
                    f">= {3 * chance:.3f} (3 x chance {chance:.3f})",
                    acc >= 3 * chance,
                ),
                check(
                    qa,
                    prior,
                    "question-type prior (text only)",
                    f">= {(prior or 0) + 0.1:.3f} (type prior {prior or 0:.3f} + 0.10)",
                    prior is not None and qa >= prior + 0.1,
                ),
                check(
                    color,
                    _get(ev, "type_prior", "em@1_by_type", "what color"),
                    "question-type prior on 'what color'",
                    ">= 0.300",
                    color is not None and color >= 0.30,
                ),
                check(
                    absrel,
                    head,
                    "metric head alone",
                    f"<= 0.100 and < {head:.3f} (metric head alone)",
                    absrel <= 0.10 and absrel < head,
                ),
            ),
        )
    )


def qa_type_lines(ev: dict) -> list[str]:
    """Markdown table of QA EM@1 per question type: trained, untrained and the text-only type prior."""
    trained = ev["trained"]["scanqa"].get("em@1_by_type", {})
    untrained = ev["untrained"]["scanqa"].get("em@1_by_type", {})
    prior = ev.get("type_prior", {})
    if not trained:
        return []
    lines = [
        "",
        "QA EM@1 by question type (the type prior answers every question of a type with one text-only answer):",
        "",
        "| question type | questions | trained | untrained | type prior | its answer |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for qtype, v in trained.items():
        u = untrained.get(qtype, {}).get("em@1")
        lines.append(
            f"| {qtype} | {v['count']} | {v['em@1']:.3f} | {_fmt(u)} | {_fmt(prior.get('em@1_by_type', {}).get(qtype))} | "
            f"{prior.get('answers', {}).get(qtype, '')} |"
        )
    return lines


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def _pictures(out: Path, exported: dict) -> dict[str, str]:
    from vidllm.viz import training_curves

    pics = {"pointcloud": exported["preview"]}
    if exported.get("depth_figure"):
        pics["depth"] = exported["depth_figure"]
    runs = [
        (name, out / name / "csv" / "metrics.csv")
        for name in ("stage1", "stage2")
        if (out / name / "csv" / "metrics.csv").is_file()
    ]
    if runs:
        pics["curves"] = str(training_curves(out / "training_curves.png", runs, title="training losses"))
    return pics


def write_report(
    out: Path, cfg, settings, evaluation: dict, exported: dict, seconds: dict, steps: dict, commands: dict
) -> dict:
    """Write ``summary.json`` and ``report.md``; returns the summary."""
    rows = metric_rows(evaluation)
    checks = threshold_checks(evaluation)
    pictures = _pictures(out, exported)
    summary = {
        "metrics": rows,
        "thresholds": checks,
        "evaluation": evaluation,
        "export": {k: v for k, v in exported.items() if k != "command"},
        "wall_seconds": seconds,
        "total_seconds": round(sum(seconds.values()), 1),
        "steps": steps,
        "settings": dataclasses.asdict(settings),
        "machine": machine_info(),
        "pictures": pictures,
        "commands": commands,
    }
    write_json(out / "summary.json", summary)
    lines = [
        "# vidllm demo report",
        "",
        f"Tiny Vid-LLM trained from scratch on {cfg.data.synthetic_scenes} synthetic scenes ({cfg.data.synthetic_trajectory} videos, "
        f"{cfg.data.num_frames} frames per clip at {cfg.data.image_size} px) on {summary['machine']['cpu']} "
        f"({summary['machine']['cpu_count']} cores, torch {summary['machine']['torch']}) in {summary['total_seconds'] / 60:.1f} minutes. "
        "Every figure is measured on the held-out scenes.",
        "",
        "## Results",
        "",
        "| metric | trained | untrained model | baseline | baseline is |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    lines += [
        f"| {r['metric']} | {_fmt(r['trained'])} | {_fmt(r['untrained'])} | {_fmt(r['baseline'])} | {r['baseline_name']} |"
        for r in rows
    ]
    lines += qa_type_lines(evaluation)
    lines += [
        "",
        "## Thresholds",
        "",
        "| check | value | baseline | baseline is | needs | |",
        "| --- | ---: | ---: | --- | --- | --- |",
    ]
    lines += [
        f"| {name} | {_fmt(c['value'])} | {_fmt(c['baseline'])} | {c['baseline_name']} | {c['rule']} | {'pass' if c['pass'] else 'MISS'} |"
        for name, c in checks.items()
    ]
    lines += ["", "## Pictures", ""]
    captions = {
        "depth": "Predicted (aligned, metric head) vs GT depth on a held-out clip",
        "pointcloud": "Held-out point cloud with predicted (red) and GT (green) boxes",
        "curves": "Training losses",
    }
    for key, path in pictures.items():
        lines += [f"![{captions[key]}]({Path(path).resolve().relative_to(out.resolve())})", f"*{captions[key]}*", ""]
    lines += [
        "## Questions about the exported scene (Python API)",
        "",
        "| question | answer | reference |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {a['question']} | {a['answer']} | {', '.join(a['reference'])} |" for a in exported["answers"]]
    lines += ["", "## Wall time", "", "| step | seconds |", "| --- | ---: |"]
    lines += [f"| {k} | {v:.0f} |" for k, v in seconds.items()]
    if steps.get("stage2_run") is not None and steps["stage2_run"] < steps["stage2"]:
        lines += [
            "",
            f"Stage 2 reached its time limit after {steps['stage2_run']} of {steps['stage2']} steps (the run's wall-clock ceiling).",
        ]
    lines += ["", "## Reproduce each step", ""]
    for name, cmd in commands.items():
        lines += [f"**{name}**", "", "```", cmd, "```", ""]
    with atomic_write(out / "report.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    return summary
