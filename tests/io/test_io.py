"""Atomic writes and safe weights loading."""

import os
import pickle

import pytest
import torch

from vidllm.errors import CheckpointError
from vidllm.io import atomic_write, load_state_dict, save_safetensors


def test_atomic_write_renames_on_success_and_cleans_up_on_failure(tmp_path):
    target = tmp_path / "sub" / "out.json"
    with atomic_write(target, "w") as f:
        f.write("{}")
        assert not target.exists()  # nothing visible until the block finishes
    assert target.read_text() == "{}"
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as f:
            f.write("half")
            raise RuntimeError("killed")
    assert target.read_text() == "{}"
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_atomic_write_path_mode(tmp_path):
    target = tmp_path / "cloud.ply"
    with atomic_write(target, mode=None) as tmp:
        assert tmp.suffix == ".ply" and tmp.parent == tmp_path
        tmp.write_bytes(b"ply")
    assert target.read_bytes() == b"ply"


def test_safetensors_and_weights_only_round_trip(tmp_path):
    sd = {"a.weight": torch.randn(3, 4), "b": torch.arange(5)}
    save_safetensors(sd, tmp_path / "m.safetensors")
    loaded = load_state_dict(tmp_path / "m.safetensors")
    assert set(loaded) == set(sd) and torch.equal(loaded["a.weight"], sd["a.weight"])
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "m.ckpt")
    assert torch.equal(load_state_dict(tmp_path / "m.ckpt")["b"], sd["b"])


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_code_running_pickle_is_refused(tmp_path):
    bad = tmp_path / "evil.pt"
    with open(bad, "wb") as f:
        pickle.dump({"w": _Exploit()}, f)
    with pytest.raises(CheckpointError, match=r"evil\.pt.*refused"):
        load_state_dict(bad)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict(tmp_path / "none.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"not really")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_state_dict(tmp_path / "junk.safetensors")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="dict of tensors"):
        load_state_dict(tmp_path / "list.pt")


def test_atomic_dir_replaces_on_success_and_keeps_old_on_failure(tmp_path):
    import pytest

    from vidllm.io import atomic_dir

    target = tmp_path / "tok"
    target.mkdir()
    (target / "old.json").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "new.json").write_text("half")
            raise RuntimeError("killed mid-save")
    assert sorted(p.name for p in target.iterdir()) == ["old.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["tok"]  # no temporary folder left behind
    with atomic_dir(target) as tmp:
        (tmp / "new.json").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.json"]
