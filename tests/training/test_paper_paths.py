"""Shipped configs as a researcher runs them: missing checkpoints fail first with one line, the stage
defaults must exist, dotted learning-rate paths parse from the command line, and shipped configs are
found from any working directory (and from an installed, non-editable package)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vidllm.cli import main
from vidllm.config import load_config
from vidllm.errors import ConfigError
from vidllm.training.fit_args import resolve_config
from vidllm.training.paths import check_checkpoints, checkpoint_paths

ROOT = Path(__file__).resolve().parents[2]


def test_paper_config_names_its_checkpoints():
    cfg = resolve_config(str(ROOT / "configs" / "vidllm_large.yaml"), 1, {})
    keys = dict(checkpoint_paths(cfg))
    assert keys["encoder.pretrained_path"] == "checkpoints/dinov2-with-registers-large"
    assert keys["recon.vggt_checkpoint"] == "checkpoints/vggt-1b/model.pt"
    assert keys["llm.path"] == "checkpoints/Qwen2.5-7B-Instruct"
    assert keys["train.distill.semantic_teacher"] == "checkpoints/llava-3d-clip-vit-large-patch14-336"
    assert "train.distill.geometry_teacher" in keys
    stage2 = dict(
        checkpoint_paths(resolve_config(str(ROOT / "configs" / "vidllm_large.yaml"), 2, {"train.init_from": "x/model"}))
    )
    assert (
        "recon.vggt_checkpoint" not in stage2 and stage2["train.init_from"] == "x/model"
    )  # init_from replaces the VGGT initialisation
    assert not any(k.startswith("train.distill") for k in stage2)


def test_missing_checkpoint_fails_first_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no checkpoints/ here
    out = tmp_path / "run"
    code = main(
        [
            "fit",
            "--stage",
            "2",
            "--config",
            str(ROOT / "configs" / "vidllm_large.yaml"),
            "--out",
            str(out),
            "--encoder.pretrained_path",
            "null",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert (
        "checkpoint not found: recon.vggt_checkpoint = 'checkpoints/vggt-1b/model.pt'; llm.path = 'checkpoints/Qwen2.5-7B-Instruct'"
        in err[0]
    )
    assert not out.exists() and not (tmp_path / "data").exists()  # no run directory, no data work


def test_existing_checkpoints_pass(tmp_path):
    (tmp_path / "llm").mkdir()
    cfg = load_config(ROOT / "configs" / "tiny.yaml", [f"llm.path={tmp_path / 'llm'}", "recon.vggt_checkpoint=null"])
    check_checkpoints(cfg)
    with pytest.raises(ConfigError, match=r"^checkpoint not found: llm.path = '/nonexistent/llm' \("):
        check_checkpoints(
            load_config(ROOT / "configs" / "tiny.yaml", ["llm.path=/nonexistent/llm", "recon.vggt_checkpoint=null"])
        )
    teacher = str(tmp_path / "teachers" / "geometry" / "model.pt")
    cfg = load_config(ROOT / "configs" / "tiny.yaml", [f"recon.vggt_checkpoint={teacher}"])
    check_checkpoints(cfg, will_create=(teacher,))  # files the run makes itself are not missing


def test_missing_stage_file_is_an_error(tmp_path, monkeypatch):
    import vidllm.shipped as shipped

    for name in ("tiny.yaml", "stage1.yaml"):
        shutil.copy(ROOT / "configs" / name, tmp_path / name)
    monkeypatch.setattr(shipped, "config_dir", lambda: tmp_path)
    assert resolve_config(str(ROOT / "configs" / "tiny.yaml"), 1, {}).train.stage == 1
    with pytest.raises(ConfigError, match=r"shipped config 'stage2.yaml' not found: .*stage2.yaml does not exist"):
        resolve_config(str(ROOT / "configs" / "tiny.yaml"), 2, {})


def test_dotted_lr_multiplier_overrides():
    cfg = resolve_config(
        str(ROOT / "configs" / "tiny.yaml"),
        2,
        {"train.lr_multipliers.vl.lm.projector": "3", "model.train.lr_multipliers.encoder": "0.5"},
    )
    assert cfg.train.lr_multipliers["vl.lm.projector"] == 3.0 and cfg.train.lr_multipliers["encoder"] == 0.5
    cfg = load_config(
        ROOT / "configs" / "vidllm_large.yaml", ["train.lr_multipliers.vl.pos_embed=2", "data.num_frames=8"]
    )
    assert (
        cfg.train.lr_multipliers["vl.pos_embed"] == 2.0
        and cfg.train.lr_multipliers["vl.lm.model"] == 1.0
        and cfg.data.num_frames == 8
    )


def test_shipped_configs_found_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config("configs/ablations/wo_cta.yaml").cta.mode == "none"
    assert (
        load_config("tiny.yaml").encoder.hidden_size == load_config(ROOT / "configs" / "tiny.yaml").encoder.hidden_size
    )
    with pytest.raises(ConfigError, match="config file not found: configs/nope.yaml"):
        load_config("configs/nope.yaml")


@pytest.mark.slow
def test_installed_package_finds_its_configs(tmp_path):
    """``pip install .`` (non-editable) into a folder, then the commands run from an empty directory."""
    src = tmp_path / "src"
    for name in ("vidllm", "cta", "recon", "vl", "configs"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "pyproject.toml", "README.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, src / name)
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    shipped = sorted(p.relative_to(ROOT / "configs") for p in (ROOT / "configs").rglob("*.yaml"))
    assert (
        sorted(
            p.relative_to(site / "vidllm" / "resources" / "configs")
            for p in (site / "vidllm" / "resources" / "configs").rglob("*.yaml")
        )
        == shipped
    )
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    script = (
        "import vidllm, sys\n"
        f"assert vidllm.__file__.startswith({str(site)!r}), vidllm.__file__\n"
        "from vidllm.training.fit_args import resolve_config\n"
        "from vidllm.shipped import shipped_config\n"
        "cfg = resolve_config('configs/ablations/wo_cta.yaml', 2, {})\n"
        "assert cfg.train.stage == 2 and cfg.cta.mode == 'none' and cfg.encoder.hidden_size == 1024\n"
        "assert resolve_config('configs/vidllm_large.yaml', 1, {}).data.tasks == ['recon']  # stage1.yaml layered\n"
        "print(shipped_config('demo.yaml'))\n"
    )
    res = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(site / "vidllm" / "resources" / "configs" / "demo.yaml")
    res = subprocess.run(
        [sys.executable, "-m", "vidllm.cli", "config", "configs/baselines/geovr_aux.yaml"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0 and "geo_aux" in res.stdout, res.stderr
    res = subprocess.run(
        [sys.executable, "-m", "vidllm.cli", "fit", "--stage", "2", "--config", "configs/vidllm_large.yaml"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert (
        res.returncode == 1
        and "checkpoint not found: encoder.pretrained_path = 'checkpoints/dinov2-with-registers-large'" in res.stderr
    )
