"""Checkpoints are replaced atomically: a failure while saving keeps the previous file intact."""

import pytest
import torch

from vidllm.training.checkpoint_io import AtomicCheckpointIO


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("killed while saving")


def test_save_replaces_atomically(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "global_step": 1}, path)
    with pytest.raises(RuntimeError, match="killed"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(2)}, "bad": _Unpicklable()}, path)
    loaded = io.load_checkpoint(path)
    assert loaded["global_step"] == 1 and torch.equal(loaded["state_dict"]["w"], torch.ones(2))
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]
