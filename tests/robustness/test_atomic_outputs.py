"""Nothing half-written: every writer of the package writes a temp file
and renames it, so a failure or a kill mid-write leaves the previous file (or none)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from vidllm.config import VidLLMConfig, load_config, save_config
from vidllm.io import load_state_dict, save_safetensors
from vidllm.training.checkpoint_io import AtomicCheckpointIO

pytestmark = pytest.mark.usefixtures("cli_logging")

ROOT = Path(__file__).resolve().parents[2]


class Killed(BaseException):
    """Stands for a kill arriving while a file is being written."""


def _only(folder: Path, *names: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(names), "temp files left behind"


def test_save_config_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "config.yaml"
    save_config(VidLLMConfig(), target)
    before = target.read_text()
    cfg = load_config(ROOT / "configs" / "tiny.yaml", ["data.num_frames=3"])

    def replace_then_die(src, dst):
        assert (
            Path(src).read_text().endswith("\n") and "num_frames: 3" in Path(src).read_text()
        )  # complete before the rename
        assert target.read_text() == before  # the old file untouched while the new one is written
        raise Killed

    monkeypatch.setattr(os, "replace", replace_then_die)
    with pytest.raises(Killed):
        save_config(cfg, target)
    monkeypatch.undo()
    assert target.read_text() == before
    _only(tmp_path, "config.yaml")


def test_save_safetensors_is_atomic(tmp_path, monkeypatch):
    import safetensors.torch

    target = tmp_path / "model.safetensors"
    save_safetensors({"w": torch.ones(3)}, target)

    def half_then_die(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\x00" * 5)  # a half-written file
        raise Killed

    monkeypatch.setattr(safetensors.torch, "save_file", half_then_die)
    with pytest.raises(Killed):
        save_safetensors({"w": torch.zeros(3)}, target)
    monkeypatch.undo()
    assert torch.equal(load_state_dict(target)["w"], torch.ones(3))
    _only(tmp_path, "model.safetensors")


def test_checkpoint_io_failure_keeps_the_previous_last_ckpt(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1, "state_dict": {"w": torch.ones(4)}}, target)
    real_save = torch.save

    def half_then_die(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a zip")
        raise Killed

    monkeypatch.setattr(torch, "save", half_then_die)
    with pytest.raises(Killed):
        io.save_checkpoint({"global_step": 2, "state_dict": {"w": torch.zeros(4)}}, target)
    monkeypatch.setattr(torch, "save", real_save)
    ckpt = torch.load(target, weights_only=True)
    assert ckpt["global_step"] == 1
    _only(tmp_path, "last.ckpt")


SAVER = textwrap.dedent(
    """
    import io, os, sys, time, torch
    from vidllm.training.checkpoint_io import AtomicCheckpointIO

    real_save = torch.save

    def slow_save(obj, f, *args, **kwargs):  # the second save stalls half-way: the kill lands mid-write
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        if obj["global_step"] == 0:
            f.write(data)
            return
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
        print("mid-write", flush=True)
        time.sleep(600)

    torch.save = slow_save
    ckpt_io, path = AtomicCheckpointIO(), sys.argv[1]
    ckpt_io.save_checkpoint({"global_step": 0, "state_dict": {"w": torch.ones(100_000)}}, path)
    print("saved", flush=True)
    ckpt_io.save_checkpoint({"global_step": 1, "state_dict": {"w": torch.zeros(100_000)}}, path)
    """
)


def test_sigkill_while_saving_never_corrupts_last_ckpt(tmp_path):
    target = tmp_path / "last.ckpt"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-c", SAVER, str(target)], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        assert proc.stdout.readline().strip() == "saved"
        assert proc.stdout.readline().strip() == "mid-write"
        proc.send_signal(signal.SIGKILL)  # no cleanup code can run
    finally:
        proc.kill()
        proc.wait(timeout=60)
    ckpt = torch.load(target, weights_only=True)  # the previous checkpoint, complete
    assert ckpt["global_step"] == 0 and torch.equal(ckpt["state_dict"]["w"], torch.ones(100_000))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "last.ckpt"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".last."), leftovers  # the killed writer's temp file only


def test_synth_failure_leaves_no_partial_dataset(tmp_path, monkeypatch, capsys):
    import vidllm.synthetic.world as world
    from vidllm.cli import main

    def partial_then_die(out, *a, **k):
        scene = Path(out) / "scans" / "scene0000_00"
        scene.mkdir(parents=True)
        (scene / "scene0000_00.txt").write_text("axisAlign")  # half a scene
        raise OSError("disk full")

    monkeypatch.setattr(world, "generate_dataset", partial_then_die)
    assert main(["synth", "--out", str(tmp_path / "data"), "--scenes", "2"]) == 1
    assert "disk full" in capsys.readouterr().err
    _only(tmp_path)  # neither data/ nor a temp folder


def test_synth_force_into_existing_dataset_replaces_scenes_whole(tmp_path, capsys):
    from vidllm.cli import main

    args = [
        "synth",
        "--out",
        str(tmp_path / "data"),
        "--scenes",
        "1",
        "--frames",
        "2",
        "--width",
        "56",
        "--height",
        "42",
        "--workers",
        "1",
    ]
    assert main(args) == 0
    (tmp_path / "data" / "scans" / "scene0000_00" / "stale.txt").write_text("old")
    (tmp_path / "data" / "notes.txt").write_text("user file")
    assert main([*args, "--force"]) == 0
    capsys.readouterr()
    data = tmp_path / "data"
    assert not (data / "scans" / "scene0000_00" / "stale.txt").exists()  # the scene folder was replaced, not mixed
    assert (data / "notes.txt").read_text() == "user file"
    assert (data / "synthetic_info.json").is_file() and (data / "scans" / "scene0000_00" / "scene0000_00.txt").is_file()
    _only(tmp_path, "data")
