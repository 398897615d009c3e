"""The commands the demo report shows are what the demo ran: each one, split back with ``shlex.split``, is the
argument list of the step (``vidllm fit``, ``vidllm teachers``) or parses to the values the step used
(``vidllm synth``'s generator settings, ``vidllm eval``'s options)."""

from __future__ import annotations

import inspect
import json
import shlex
from pathlib import Path

import pytest

from vidllm.commands import synth_cmd, teachers_cmd
from vidllm.config import load_config, save_config
from vidllm.synthetic.demo import pipeline
from vidllm.synthetic.demo.argv import command_line, eval_argvs, fit_argv
from vidllm.synthetic.demo.settings import DemoSettings
from vidllm.training.fit_args import parse_fit_args


def _demo(tmp_path, **settings):
    settings = DemoSettings(out=str(tmp_path / "demo"), scenes=4, minutes=0.25, seed=3, eval_limit=6, **settings)
    out = Path(settings.out)
    out.mkdir(parents=True)
    cfg = pipeline.demo_config(settings, out)
    save_config(cfg, out / "config.yaml")
    return settings, cfg, out


def test_a_fit_command_splits_back_into_the_arguments_it_runs_with(tmp_path):
    settings, cfg, out = _demo(tmp_path)
    argv = fit_argv(
        out / "config.yaml",
        2,
        out / "stage2",
        7,
        3,
        ["--model.init_from", "s1 model", "--trainer.max_time", "{seconds: 90}"],
    )
    assert shlex.split(command_line("vidllm fit", argv)) == ["vidllm", "fit", *argv]
    args = parse_fit_args(argv)
    assert args.stage == 2 and args.out == str(out / "stage2") and args.seed == 3
    assert args.cfg.train.max_steps == 7 and args.cfg.train.init_from == "s1 model"
    assert args.trainer == {"max_steps": 7, "log_every_n_steps": 5, "max_time": {"seconds": 90}}


def test_training_steps_report_exactly_the_runs(tmp_path, monkeypatch):
    settings, cfg, out = _demo(tmp_path, semantic_dense_weight=0.5)
    fits, teachers, generated = [], [], []

    def fake_fit(argv, mode="fit"):
        fits.append(list(argv))
        run = Path(parse_fit_args(argv).out)
        (run / "model").mkdir(parents=True)
        (run / "model" / "fit_state.json").write_text(json.dumps({"global_step": 5}))

    monkeypatch.setattr(pipeline, "fit", fake_fit)
    monkeypatch.setattr(teachers_cmd, "run", lambda args: teachers.append(args))
    monkeypatch.setattr("vidllm.data.datamodule.ensure_synthetic", lambda data: generated.append(data))
    done = {"teachers": False, "stage1": False, "stage2": False}
    steps = {"stage1": 4, "stage2": 6}
    commands = pipeline._train(settings, cfg, out / "config.yaml", pipeline.Timer(out), done, steps)

    assert len(fits) == 2 and steps["stage2_run"] == 5
    for name, argv in zip(("stage1", "stage2"), fits):
        assert shlex.split(commands[name]) == ["vidllm", "fit", *argv]
    assert parse_fit_args(fits[1]).cfg.train.init_from == str(out / "stage1" / "model")

    words = shlex.split(commands["teachers"])
    assert words[:2] == ["vidllm", "teachers"]
    args = teachers_cmd.build_parser().parse_args(words[2:])
    assert len(teachers) == 1 and vars(teachers[0]) == vars(args)  # the parsed arguments it ran with
    tcfg = teachers_cmd.teacher_config(args)
    assert tcfg == pipeline._teacher_settings(settings, cfg) and tcfg.semantic_dense_weight == 0.5
    assert load_config(args.config) == cfg and args.out == str(out / "teachers") and args.data is None

    words = shlex.split(commands["data"])
    assert words[:2] == ["vidllm", "synth"]
    args = synth_cmd.build_parser().parse_args(words[2:])
    from vidllm.data.datamodule import synthetic_params

    assert generated == [cfg.data]
    assert synth_cmd.synth_params(args) == synthetic_params(cfg.data)
    assert (args.out, args.scenes, args.seed) == (cfg.data.root, cfg.data.synthetic_scenes, cfg.data.seed)


def test_synth_command_refuses_settings_it_cannot_express():
    from vidllm.synthetic.world import SynthParams

    with pytest.raises(ValueError, match="jpeg_quality"):
        synth_cmd.synth_argv("out", 3, 0, SynthParams(jpeg_quality=50))
    params = SynthParams(width=112, height=84, depth_width=80, depth_height=60, trajectory="walk", hfov_deg=62.5)
    args = synth_cmd.build_parser().parse_args(synth_cmd.synth_argv("out", 3, 1, params))
    assert synth_cmd.synth_params(args) == params


@pytest.mark.parametrize("limit", [None, 6])
def test_evaluation_commands_are_the_evaluation_the_demo_runs(tmp_path, monkeypatch, limit):
    """Spy on the evaluation functions the demo calls; each reported ``vidllm eval`` command parses to the same
    split, output directory, limit, batch size and task options."""
    import vidllm.evaluation.clips as clips
    import vidllm.evaluation.grounding as grounding
    import vidllm.evaluation.outputs as outputs
    import vidllm.evaluation.predictor as predictor
    import vidllm.evaluation.qa as qa
    import vidllm.evaluation.reconstruction as reconstruction
    from vidllm.commands.eval_cmd import build_parser

    settings, cfg, out = _demo(tmp_path)
    calls = []

    def spy(module, name, result):
        real = getattr(module, name)

        def fake(*args, **kwargs):
            bound = inspect.signature(real).bind(*args, **kwargs)
            bound.apply_defaults()
            calls.append((name, dict(bound.arguments)))
            return result(bound.arguments) if callable(result) else result

        monkeypatch.setattr(module, name, fake)

    spy(clips, "SceneClips", None)
    spy(predictor, "ModelPredictor", lambda a: {"batch_size": a["batch_size"]})
    spy(grounding, "evaluate_scanrefer", ([], {}))
    spy(qa, "evaluate_qa", ([], {}))
    spy(reconstruction, "evaluate_recon", ([], {}))
    spy(outputs, "write_outputs", None)
    pipeline._evaluate(object(), cfg, out / "eval" / "trained", limit)

    # each evaluation call is followed by the write_outputs of its directory
    evaluations = [(n, a) for n, a in calls if n.startswith("evaluate_")]
    written = [Path(a["out_dir"]) for n, a in calls if n == "write_outputs"]
    assert len(evaluations) == len(written) == 4
    used = dict(zip(written, evaluations))
    argvs = eval_argvs(out / "stage2" / "model", cfg.data.root, out / "eval" / "trained", limit)
    assert {Path(argv[argv.index("--out") + 1]) for argv in argvs.values()} == set(used)
    for name, a in calls:
        if name == "SceneClips":
            assert a["split"] == "val" and a["cfg"].root == cfg.data.root
    tasks = {"evaluate_scanrefer": "scanrefer", "evaluate_qa": "scanqa", "evaluate_recon": "recon"}
    for argv in argvs.values():
        assert shlex.split(command_line("vidllm", argv)) == ["vidllm", *argv] and argv[0] == "eval"
        args = build_parser().parse_args(argv[1:])
        name, run = used[args.out]
        assert args.eval_task == tasks[name]
        assert args.split == "val" and args.data == Path(cfg.data.root) and args.limit == run["limit"]
        if "predictor" in run:
            assert args.batch_size == run["predictor"]["batch_size"]
        if name == "evaluate_scanrefer":
            assert args.proposals == run["proposals"] and args.task == "scanrefer"
        if name == "evaluate_qa":
            assert args.no_captions == (not run["captions"]) and args.task == "scanqa" and run["task"] == "qa"
            assert args.max_new_tokens == run["max_new_tokens"]
        if name == "evaluate_recon":
            assert args.no_pointcloud == (not run["pointcloud"]) and args.conf_quantile == run["conf_quantile"]


def test_export_step_reports_the_export_command_it_ran(tmp_path, monkeypatch, synthetic_root, tokenizer):
    """The export step runs ``vidllm export-pointcloud`` through the command's function on the model directory it
    is given; the reported command parses to the arguments that ran, and the grounding / answers use the same frames."""
    import torch

    from tests.helpers import micro_config
    from vidllm.api import VidLLMPipeline
    from vidllm.commands import export_pointcloud_cmd
    from vidllm.model import VidLLM
    from vidllm.synthetic.demo.export import export_and_answer

    cfg = micro_config(**{"data.num_frames": 3, "data.root": str(synthetic_root)})
    torch.manual_seed(0)
    model_dir = VidLLM(cfg, tokenizer).save_pretrained(tmp_path / "stage2" / "model")
    pipeline = VidLLMPipeline.from_pretrained(model_dir, device="cpu")
    ran, videos = [], []
    real_export, real_answer = export_pointcloud_cmd.export, pipeline.answer_many
    monkeypatch.setattr(export_pointcloud_cmd, "export", lambda args: ran.append(args) or real_export(args))
    monkeypatch.setattr(pipeline, "answer_many", lambda video, qs: videos.append(video) or real_answer(video, qs))

    exported = export_and_answer(pipeline, cfg, model_dir, tmp_path / "export", ["what color is the chair"])
    words = shlex.split(exported["command"])
    assert words[:2] == ["vidllm", "export-pointcloud"] and len(ran) == 1
    args = export_pointcloud_cmd.build_parser().parse_args(words[2:])
    assert vars(args) == vars(ran[0]) and args.checkpoint == model_dir and args.skip_invalid_poses
    assert videos == [export_pointcloud_cmd.video_input(args)]  # the answers saw the exported frames
    import open3d as o3d

    assert len(o3d.io.read_point_cloud(exported["ply"]).points) == exported["points"] > 0
    boxes = json.loads(args.boxes.read_text())
    assert set(boxes) == {"pred", "gt"} and len(boxes["pred"]) == len(boxes["gt"]) == len(exported["grounding"])
    assert [r["question"] for r in exported["answers"]] == ["what color is the chair"]
