"""Per-module learning rates, decay groups and the warm-up + cosine schedule."""

import math

import pytest
import torch
from torch import nn

from vidllm.training.optim import build_optimizer, build_scheduler, param_groups, warmup_cosine


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(4, 4)
        self.cta = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.cta.bridge_tokens = nn.Parameter(torch.zeros(3, 4))
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def test_groups_lr_and_decay():
    groups = {g["name"]: g for g in param_groups(_Toy(), lr=1e-3, weight_decay=0.05, lr_multipliers={"encoder": 0.1})}
    assert set(groups) == {"encoder", "encoder/no_decay", "cta", "cta/no_decay"}
    assert groups["encoder"]["lr"] == pytest.approx(1e-4)
    assert groups["cta"]["lr"] == pytest.approx(1e-3)
    assert groups["cta/no_decay"]["weight_decay"] == 0.0
    # bias, LayerNorm weight + bias and the bridge tokens carry no decay; the two Linear weights do
    assert len(groups["cta/no_decay"]["params"]) == 4
    assert len(groups["cta"]["params"]) == 1


def test_unknown_multiplier_and_all_frozen():
    with pytest.raises(ValueError, match="unknown module"):
        param_groups(_Toy(), 1e-3, 0.05, {"decoder": 2.0})
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        build_optimizer(frozen, 1e-3)


def test_warmup_cosine_closed_form():
    assert warmup_cosine(0, 10, 110) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 110) == pytest.approx(1.0)
    assert warmup_cosine(10, 10, 110) == pytest.approx(1.0)
    assert warmup_cosine(60, 10, 110) == pytest.approx(0.5)
    assert warmup_cosine(35, 10, 110) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    assert warmup_cosine(110, 10, 110) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(500, 10, 110, min_ratio=0.1) == pytest.approx(0.1)


def test_scheduler_drives_optimizer():
    model = _Toy()
    opt = build_optimizer(model, lr=1.0, lr_multipliers={"encoder": 0.5})
    sched = build_scheduler(opt, warmup_steps=4, total_steps=20)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.9, 0.999)
    lrs = []
    for _ in range(5):
        lrs.append({g["name"]: g["lr"] for g in opt.param_groups})
        opt.step()
        sched.step()
    assert lrs[0]["cta"] == pytest.approx(0.25) and lrs[0]["encoder"] == pytest.approx(0.125)
    assert lrs[3]["cta"] == pytest.approx(1.0) and lrs[4]["cta"] == pytest.approx(1.0)


class _Nested(nn.Module):
    """``vl.lm.model`` / ``vl.lm.projector`` / ``vl.pos_embed`` like the full model's VL branch."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(4, 4)
        self.vl = nn.Module()
        self.vl.lm = nn.Module()
        self.vl.lm.model = nn.Linear(4, 4)
        self.vl.lm.model_extra = nn.Linear(4, 4)  # shares a string prefix with vl.lm.model, not a path prefix
        self.vl.lm.projector = nn.Linear(4, 4)
        self.vl.pos_embed = nn.Linear(4, 4)


def test_dotted_paths_longest_prefix_wins():
    mult = {"vl": 2.0, "vl.lm": 3.0, "vl.lm.projector": 5.0, "encoder": 0.1}
    groups = {g["name"]: g for g in param_groups(_Nested(), lr=1.0, weight_decay=0.05, lr_multipliers=mult)}
    assert groups["vl.lm.projector"]["lr"] == pytest.approx(5.0)
    assert groups["vl.lm"]["lr"] == pytest.approx(3.0)  # vl.lm.model and vl.lm.model_extra
    assert len(groups["vl.lm"]["params"]) == 2 and len(groups["vl.lm/no_decay"]["params"]) == 2
    assert groups["vl"]["lr"] == pytest.approx(2.0)  # vl.pos_embed
    assert groups["encoder"]["lr"] == pytest.approx(0.1)
    groups = {
        g["name"]: g for g in param_groups(_Nested(), lr=1.0, weight_decay=0.05, lr_multipliers={"vl.lm.model": 7.0})
    }
    assert groups["vl.lm.model"]["lr"] == pytest.approx(7.0) and len(groups["vl.lm.model"]["params"]) == 1
    assert groups["vl"]["lr"] == pytest.approx(1.0)  # unmatched parameters: one group per top-level module, base rate
    assert sum(len(g["params"]) for g in groups.values()) == len(list(_Nested().parameters()))


def test_unknown_dotted_path_names_key_and_valid_prefixes():
    with pytest.raises(ValueError, match=r"unknown module path\(s\) \['vl.lm.mod'\].*'vl.lm.model'.*'vl.pos_embed'"):
        param_groups(_Nested(), 1e-3, 0.05, {"vl.lm.mod": 2.0})
    with pytest.raises(ValueError, match=r"\['llm'\]"):
        param_groups(_Nested(), 1e-3, 0.05, {"llm": 1.0})
