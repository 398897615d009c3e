"""`vidllm fit` end to end on synthetic data: stage 1 → stage 2 (weights only), resume, DDP."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vidllm.cli import main

ROOT = Path(__file__).resolve().parents[2]

MICRO = [
    "--encoder.hidden_size",
    "32",
    "--encoder.num_heads",
    "2",
    "--cta.num_heads",
    "2",
    "--cta.num_bridge_tokens",
    "4",
    "--recon.aggregator.num_heads",
    "2",
    "--recon.camera_head.num_heads",
    "2",
    "--recon.camera_head.trunk_depth",
    "1",
    "--recon.depth_head.features",
    "16",
    "--recon.depth_head.out_channels",
    "[8,8,16,16]",
    "--metric_depth.features",
    "16",
    "--metric_depth.out_channels",
    "[8,8,16,16]",
    "--metric_depth.n_bins",
    "8",
    "--llm.hidden_size",
    "32",
    "--llm.num_heads",
    "2",
    "--llm.num_kv_heads",
    "1",
    "--llm.intermediate_size",
    "64",
    "--llm.num_layers",
    "1",
    "--data.num_frames",
    "2",
    "--data.image_size",
    "56",
    "--data.batch_size",
    "2",
    "--recon.vggt_checkpoint",
    "null",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.limit_val_batches",
    "1",
]


def _tiny_fit(stage: int, root, *extra: str) -> list[str]:
    """``vidllm fit --stage N`` arguments of the tiny config on ``root`` with the micro sizes, then ``extra``."""
    return [
        "fit",
        "--stage",
        str(stage),
        "--config",
        str(ROOT / "configs" / "tiny.yaml"),
        "--data.root",
        str(root),
        *MICRO,
        *extra,
    ]


def _losses(run: Path, key: str) -> list[float]:
    with open(run / "csv" / "metrics.csv") as f:
        return [float(row[key]) for row in csv.DictReader(f) if row.get(key)]


def _steps(run: Path, key: str) -> list[int]:
    with open(run / "csv" / "metrics.csv") as f:
        return [int(row["step"]) for row in csv.DictReader(f) if row.get(key)]


def test_stage1_then_stage2_from_stage1_weights(tmp_path, synthetic_root, teacher_files):
    teachers = [
        "--train.distill.geometry_teacher",
        str(teacher_files / "model.pt"),
        "--train.distill.semantic_teacher",
        str(teacher_files / "clip"),
    ]
    assert main(_tiny_fit(1, synthetic_root, *teachers, "--trainer.max_steps", "3", "--out", str(tmp_path / "s1"))) == 0
    assert (tmp_path / "s1" / "model" / "model.safetensors").is_file()
    assert _losses(tmp_path / "s1", "train/loss")
    assert (
        main(
            _tiny_fit(
                2,
                synthetic_root,
                "--model.init_from",
                str(tmp_path / "s1" / "model"),
                "--trainer.max_steps",
                "3",
                "--out",
                str(tmp_path / "s2"),
            )
        )
        == 0
    )
    assert len(_losses(tmp_path / "s2", "train/recon/loss")) == 3
    saved = (tmp_path / "s2" / "config.yaml").read_text()
    assert "stage: 2" in saved and str(tmp_path / "s1" / "model") in saved


def test_resume_same_stage_from_last_checkpoint(tmp_path, synthetic_root):
    args = _tiny_fit(2, synthetic_root, "--out", str(tmp_path / "run"))
    assert main([*args, "--trainer.max_steps", "2"]) == 0
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert _steps(tmp_path / "run", "train/loss") == [0, 1]
    assert main([*args, "--trainer.max_steps", "4", "--ckpt_path", "last"]) == 0
    assert _steps(tmp_path / "run", "train/loss")[-2:] == [2, 3]  # continued after step 2, not restarted


def test_time_limit_ends_the_run_early_and_fit_state_says_so(tmp_path, synthetic_root):
    import json

    args = _tiny_fit(2, synthetic_root, "--out", str(tmp_path / "run"))
    from vidllm.training.fit import fit

    result = fit([*args[1:], "--trainer.max_steps", "1000", "--trainer.max_time", "{seconds: 2}"])  # the library call
    state = json.loads((tmp_path / "run" / "model" / "fit_state.json").read_text())
    assert state["max_steps"] == 1000 and state["stage"] == 2
    assert (result.mode, result.stage, result.global_step) == ("fit", 2, state["global_step"])
    assert result.model_dir == tmp_path / "run" / "model" and result.results is None and "train/loss" in result.metrics
    assert 1 <= state["global_step"] < 1000 and state["global_step"] == max(_steps(tmp_path / "run", "train/loss")) + 1
    from vidllm.synthetic.demo.pipeline import stage2_time_limit, steps_run
    from vidllm.synthetic.demo.settings import DemoSettings

    assert steps_run(tmp_path / "run") == state["global_step"] and steps_run(tmp_path / "nothing") is None
    settings = DemoSettings()  # default budget: 19.5 min ceiling
    reserve = settings.reserve_seconds
    assert stage2_time_limit(settings, 300.0) == pytest.approx(19.5 * 60 - 300 - reserve)
    assert stage2_time_limit(settings, 1200.0) == 60.0  # a late start still trains a minute
    assert stage2_time_limit(DemoSettings(minutes=24.0), 300.0) == pytest.approx(
        2 * 19.5 * 60 - 300 - reserve
    )  # scales with --minutes


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert (
        main(
            ["fit", "--config", str(ROOT / "configs" / "tiny.yaml"), "--trainer.max_stepz", "3", "--out", str(tmp_path)]
        )
        == 1
    )
    assert "max_stepz" in capsys.readouterr().err
    assert (
        main(["fit", "--config", str(ROOT / "configs" / "tiny.yaml"), "--data.nope", "3", "--out", str(tmp_path)]) == 1
    )
    assert "data.nope" in capsys.readouterr().err
    assert (
        main(
            [
                "fit",
                "--stage",
                "1",
                "--config",
                str(ROOT / "configs" / "tiny.yaml"),
                "--train.distill.geometry_teacher",
                str(tmp_path / "x.pt"),
                "--out",
                str(tmp_path),
            ]
        )
        == 1
    )
    assert "vidllm teachers" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path, synthetic_root, teacher_files):
    cmd = [
        sys.executable,
        "-m",
        "vidllm.cli",
        *_tiny_fit(1, synthetic_root),
        "--train.distill.geometry_teacher",
        str(teacher_files / "model.pt"),
        "--train.distill.semantic_teacher",
        str(teacher_files / "clip"),
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "ddp",
        "--trainer.max_steps",
        "3",
        "--out",
        str(tmp_path / "ddp"),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "ddp" / "model" / "model.safetensors").is_file()


def test_export_checkpoint_matches_saved_model(tmp_path, synthetic_root):
    args = _tiny_fit(2, synthetic_root, "--out", str(tmp_path / "run"))
    assert main([*args, "--trainer.max_steps", "1"]) == 0
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert main(["export-checkpoint", str(last), "--out", str(tmp_path / "exported")]) == 0
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "exported" / "model.safetensors"))
    b = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert main(["export-checkpoint", str(tmp_path / "nope.ckpt"), "--out", str(tmp_path / "x")]) == 1
    assert not (tmp_path / "x").exists()


def test_resumed_run_has_the_losses_of_an_uninterrupted_run(tmp_path, synthetic_root):
    common = _tiny_fit(2, synthetic_root, "--data.batch_size", "1", "--train.max_steps", "4")
    assert main([*common, "--out", str(tmp_path / "full"), "--trainer.max_steps", "4"]) == 0
    assert main([*common, "--out", str(tmp_path / "cut"), "--trainer.max_steps", "2"]) == 0  # stopped mid-epoch
    assert main([*common, "--out", str(tmp_path / "cut"), "--trainer.max_steps", "4", "--ckpt_path", "last"]) == 0
    full = _losses(tmp_path / "full", "train/loss")
    resumed = _losses(tmp_path / "cut", "train/loss")
    assert len(full) == 4
    torch.testing.assert_close(torch.tensor(resumed[-2:]), torch.tensor(full[2:]), rtol=1e-5, atol=1e-6)
