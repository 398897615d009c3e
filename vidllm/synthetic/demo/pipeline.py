"""The demo's steps, each timed and announced on one line; the report is written at the end.

Steps: data → teachers → stage 1 → stage 2 → evaluation (trained and untrained model) →
export + API answers → report. Every step runs the package's own code paths: the synthetic
generator, ``vidllm teachers``, ``vidllm fit`` (Lightning), the evaluation runners behind
``vidllm eval``, ``vidllm export-pointcloud`` and the Python API.
"""

from __future__ import annotations

import dataclasses
import json
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from vidllm.commands import teachers_cmd
from vidllm.config import VidLLMConfig, config_from_dict, load_config, save_config
from vidllm.evaluation.outputs import write_json
from vidllm.synthetic.demo.argv import EVAL_BATCH_SIZE, command_line, eval_argvs, fit_argv, synth_command_argv
from vidllm.synthetic.demo.settings import DemoSettings
from vidllm.synthetic.tiny_teachers.teacher_config import TeacherTrainConfig
from vidllm.training.fit import fit, quiet_known_warnings

__all__ = ["run_demo", "STEPS", "stage2_time_limit", "steps_run"]

STEPS = ("data", "teachers", "stage1", "stage2", "evaluate", "export", "report")


class Timer:
    """Announces steps (``[k/N] name ...``) and records their wall time in ``<out>/timings.json``
    (a resumed run keeps the recorded time of the steps it reuses)."""

    def __init__(self, out: Path, resume: bool = False) -> None:
        self.path = out / "timings.json"
        recorded = json.loads(self.path.read_text()) if resume and self.path.is_file() else {}
        self.recorded: dict[str, float] = recorded
        self.seconds: dict[str, float] = {}
        self.start = time.perf_counter()

    @contextmanager
    def step(self, name: str, what: str, reused: bool = False):
        k = STEPS.index(name) + 1
        print(f"\n[{k}/{len(STEPS)}] {name}: {what}{' (reused from the earlier run)' if reused else ''}", flush=True)
        t0 = time.perf_counter()
        yield
        self.seconds[name] = (
            self.recorded[name] if reused and name in self.recorded else round(time.perf_counter() - t0, 1)
        )
        write_json(self.path, self.seconds)
        print(
            f"[{k}/{len(STEPS)}] {name}: done in {self.seconds[name]:.0f} s (total {time.perf_counter() - self.start:.0f} s)",
            flush=True,
        )


def demo_config(settings: DemoSettings, out: Path) -> VidLLMConfig:
    """``configs/demo.yaml`` with this run's data, teacher and initialisation paths."""
    from vidllm.shipped import shipped_config

    cfg = load_config(settings.config or shipped_config("demo.yaml"))
    teachers = out / "teachers"
    data = {"root": str(out / "data"), "seed": settings.seed}
    if settings.scenes is not None:
        data["synthetic_scenes"] = settings.scenes
    overrides = {
        "data": data,
        "recon": {"vggt_checkpoint": str(teachers / "geometry" / "model.pt")},
        "train": {
            "seed": settings.seed,
            "distill": {
                "geometry_teacher": str(teachers / "geometry" / "model.pt"),
                "semantic_teacher": str(teachers / "semantic"),
            },
        },
    }
    return config_from_dict(overrides, source="vidllm demo", base=cfg)


def _evaluate(pipeline, cfg: VidLLMConfig, out: Path, limit: int | None) -> dict:
    """Grounding (GT proposals and proposal-free), QA EM@1 and reconstruction on the held-out split."""
    from vidllm.evaluation.clips import SceneClips
    from vidllm.evaluation.grounding import evaluate_scanrefer
    from vidllm.evaluation.outputs import write_outputs
    from vidllm.evaluation.predictor import ModelPredictor
    from vidllm.evaluation.qa import evaluate_qa
    from vidllm.evaluation.reconstruction import evaluate_recon

    data = dataclasses.replace(cfg.data, num_workers=0)
    predictor = ModelPredictor(pipeline, batch_size=EVAL_BATCH_SIZE)
    results = {}
    clips = SceneClips(data, "val", ["grounding"])
    for proposals in ("gt", "none"):
        preds, metrics = evaluate_scanrefer(predictor, clips, proposals, limit, progress=True)
        write_outputs(out / f"scanrefer_{proposals}", preds, metrics)
        results[f"scanrefer_{proposals}"] = metrics
    preds, metrics = evaluate_qa(predictor, SceneClips(data, "val", ["qa"]), "qa", limit, captions=False, progress=True)
    write_outputs(out / "scanqa", preds, metrics)
    results["scanqa"] = metrics
    records, metrics = evaluate_recon(
        pipeline, SceneClips(data, "val", ["recon"]), None, pointcloud=True, progress=True
    )
    write_outputs(out / "recon", records, metrics)
    results["recon"] = metrics
    return results


def stage2_time_limit(settings: DemoSettings, elapsed: float) -> float:
    """Seconds stage 2 may take: the run's ceiling (``total_minutes`` × scale) minus what has elapsed and
    the reserve for evaluation and export; at least a minute, so a late start still trains."""
    return max(60.0, settings.total_minutes * settings.scale * 60.0 - elapsed - settings.reserve_seconds)


def steps_run(run_dir: Path) -> int | None:
    """The optimiser steps a ``vidllm fit`` run took (its ``model/fit_state.json``), None without one."""
    path = run_dir / "model" / "fit_state.json"
    return int(json.loads(path.read_text())["global_step"]) if path.is_file() else None


EVAL_TASKS = ("scanrefer_gt", "scanrefer_none", "scanqa", "recon")


def _load_evaluation(directory: Path) -> dict:
    return {task: json.loads((directory / task / "metrics.json").read_text()) for task in EVAL_TASKS}


def _finished(settings: DemoSettings, out: Path) -> dict[str, bool]:
    """Which steps an earlier run in ``out`` completed (only with ``settings.resume``)."""
    r = settings.resume
    stage = {n: r and (out / n / "model" / "model.safetensors").is_file() for n in ("stage1", "stage2")}
    return {
        "teachers": r
        and (out / "teachers" / "geometry" / "meta.json").is_file()
        and (out / "teachers" / "semantic" / "meta.json").is_file(),
        "stage1": stage["stage1"],
        "stage2": stage["stage1"] and stage["stage2"],
        "evaluate": r
        and stage["stage2"]
        and all(
            (out / "eval" / run / t / "metrics.json").is_file() for run in ("trained", "untrained") for t in EVAL_TASKS
        ),
    }


def _qa_baselines(cfg: VidLLMConfig) -> dict:
    """The text-only QA baselines: the majority (first) training answer and the question-type prior."""
    from vidllm.data.annotations import read_scanqa
    from vidllm.evaluation.qa import majority_answer_baseline, type_prior_baseline

    ann = Path(cfg.data.root) / "annotations"
    train = read_scanqa(ann / "ScanQA_v1.0_train.json")
    val = read_scanqa(ann / "ScanQA_v1.0_val.json")
    majority = majority_answer_baseline(
        [r.answers[0] for r in train if r.answers], {str(r.question_id): list(r.answers) for r in val}
    )
    prior = type_prior_baseline(
        [(r.question, list(r.answers)) for r in train], {str(r.question_id): (r.question, list(r.answers)) for r in val}
    )
    return {"majority_answer": majority, "type_prior": prior}


def _teacher_settings(settings: DemoSettings, cfg: VidLLMConfig) -> TeacherTrainConfig:
    """The demo's teacher training: steps and minutes scaled with the budget (the geometry teacher gets 60 %),
    4-frame clips over the whole scene, half of them reversed, one held-out window per scene."""
    s = settings.scale
    minutes = settings.teacher_minutes * s
    return TeacherTrainConfig(
        seed=settings.seed,
        geometry_steps=max(4, round(settings.teacher_steps * s)),
        semantic_steps=max(4, round(settings.teacher_steps * s)),
        geometry_minutes=0.6 * minutes,
        semantic_minutes=0.4 * minutes,
        clip_frames=4,
        clip_span=cfg.data.synthetic_frames,
        reverse_prob=0.5,
        eval_clip_frames=cfg.data.num_frames,
        eval_clips_per_scene=1,  # one window: clip_span covers the scene
        semantic_dense_weight=settings.semantic_dense_weight,
    )


def _train(
    settings: DemoSettings, cfg: VidLLMConfig, config_path: Path, timer: Timer, done: dict, steps: dict
) -> dict[str, str]:
    """Steps data → teachers → stage 1 → stage 2 (those in ``done`` reused); returns the command of each, the
    argument list it ran. Adds ``steps["stage2_run"]``, the steps stage 2 took."""
    from vidllm.data.datamodule import ensure_synthetic
    from vidllm.synthetic.world import is_generated

    out = Path(settings.out)
    commands: dict[str, str] = {}
    data_reused = settings.resume and is_generated(cfg.data.root)
    with timer.step(
        "data",
        f"{cfg.data.synthetic_scenes} synthetic scenes ({cfg.data.synthetic_trajectory} videos) in {cfg.data.root}",
        data_reused,
    ):
        ensure_synthetic(cfg.data)
        commands["data"] = command_line("vidllm synth", synth_command_argv(cfg.data))

    with timer.step(
        "teachers",
        "geometry (VGGT-style) and semantic (CLIP-style) teachers trained on the training scenes",
        done["teachers"],
    ):
        argv = teachers_cmd.teachers_argv(config_path, out / "teachers", _teacher_settings(settings, cfg))
        if not done["teachers"]:
            teachers_cmd.run(teachers_cmd.build_parser().parse_args(argv))
        commands["teachers"] = command_line("vidllm teachers", argv)

    with timer.step(
        "stage1", f"dual-teacher distillation, {steps['stage1']} steps (vidllm fit --stage 1)", done["stage1"]
    ):
        argv = fit_argv(config_path, 1, out / "stage1", steps["stage1"], settings.seed)
        if not done["stage1"]:
            fit(argv)
        commands["stage1"] = command_line("vidllm fit", argv)

    stage2_seconds = round(stage2_time_limit(settings, time.perf_counter() - timer.start))
    with timer.step(
        "stage2",
        f"joint training, {steps['stage2']} steps or {stage2_seconds} s (vidllm fit --stage 2)",
        done["stage2"],
    ):
        init = ["--model.init_from", str(out / "stage1" / "model")]
        argv = fit_argv(
            config_path,
            2,
            out / "stage2",
            steps["stage2"],
            settings.seed,
            [*init, "--trainer.max_time", f"{{seconds: {stage2_seconds}}}"],
        )
        if not done["stage2"]:
            fit(argv)
        steps["stage2_run"] = steps_run(out / "stage2")
        commands["stage2"] = command_line("vidllm fit", argv)
    return commands


def run_demo(settings: DemoSettings) -> dict:
    """Run every step; returns the summary dict (also written to ``<out>/summary.json``)."""
    from vidllm.api import VidLLMPipeline
    from vidllm.model import VidLLM
    from vidllm.synthetic.demo.demo_report import write_report
    from vidllm.synthetic.demo.export import export_and_answer

    quiet_known_warnings()
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    timer = Timer(out, settings.resume)
    cfg = demo_config(settings, out)
    config_path = out / "config.yaml"
    save_config(cfg, config_path)
    s = settings.scale
    steps = {"stage1": max(4, round(settings.stage1_steps * s)), "stage2": max(4, round(settings.stage2_steps * s))}
    done = _finished(settings, out)
    commands = _train(settings, cfg, config_path, timer, done, steps)

    with timer.step(
        "evaluate",
        "held-out scenes: grounding, QA, depth, poses, point clouds (trained and untrained model)",
        done["evaluate"],
    ):
        trained_dir = out / "stage2" / "model"  # where `vidllm fit --out <out>/stage2` saved the model
        trained = VidLLMPipeline.from_pretrained(trained_dir, device="cpu")
        torch.manual_seed(settings.seed)
        untrained = VidLLMPipeline(VidLLM(trained.config, trained.model.vl.lm.tokenizer))
        evaluation = {
            "trained": _load_evaluation(out / "eval" / "trained")
            if done["evaluate"]
            else _evaluate(trained, cfg, out / "eval" / "trained", settings.eval_limit),
            "untrained": _load_evaluation(out / "eval" / "untrained")
            if done["evaluate"]
            else _evaluate(untrained, cfg, out / "eval" / "untrained", settings.eval_limit),
            **_qa_baselines(cfg),
        }
        argvs = eval_argvs(trained_dir, cfg.data.root, out / "eval" / "trained", settings.eval_limit)
        commands["evaluate"] = "\n".join(command_line("vidllm", argv) for argv in argvs.values())

    with timer.step(
        "export",
        "point cloud of a held-out scene (vidllm export-pointcloud: PLY + preview) and three questions through the Python API",
    ):
        exported = export_and_answer(trained, cfg, trained_dir, out / "export", settings.questions)
        commands["export"] = exported.pop("command")

    with timer.step("report", f"{out / 'summary.json'} and {out / 'report.md'}"):
        summary = write_report(out, cfg, settings, evaluation, exported, timer.seconds, steps, commands)
    print(f"\nvidllm demo: finished in {time.perf_counter() - timer.start:.0f} s — {out / 'report.md'}", flush=True)
    for name, check in summary["thresholds"].items():
        value = "n/a" if check["value"] is None else f"{check['value']:.3f}"
        baseline = "n/a" if check["baseline"] is None else f"{check['baseline']:.3f}"
        print(f"  {'PASS' if check['pass'] else 'MISS'}  {name}: {value} (baseline {baseline}; needs {check['rule']})")
    return summary
