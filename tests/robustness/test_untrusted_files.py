"""Untrusted weight files: a pickle that would run code is refused by every
loader with a clear message and never executes; shape mismatches name the key and both shapes;
``trust_remote_code`` is never enabled; no loader can unpickle arbitrary objects."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.usefixtures("cli_logging")

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("vidllm", "recon", "vl", "cta", "tools")


class _TouchFile:
    """Unpickling this object runs ``touch <marker>`` (what an attacker would do with a checkpoint)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _exploit(path: Path, marker: Path, wrap: str | None = None) -> Path:
    payload = {"weight": torch.zeros(2, 2), "evil": _TouchFile(marker)}
    if wrap == "lightning":
        payload = {
            "state_dict": {"weight": torch.zeros(2, 2)},
            "epoch": 0,
            "global_step": 1,
            "pytorch-lightning_version": "2.6.0",
            "loops": _TouchFile(marker),
        }
    elif wrap == "vggt":
        payload = {
            "aggregator.camera_token": torch.zeros(1, 2, 1, 8),
            "aggregator.patch_embed.cls_token": _TouchFile(marker),
        }
    torch.save(payload, path)
    return path


def test_the_crafted_file_really_runs_code_when_unpickled(tmp_path):
    """Guard for the tests below: the file is dangerous (an unsafe load creates the marker)."""
    marker = tmp_path / "pwned"
    path = _exploit(tmp_path / "evil.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def _loaders():
    from recon.vggt_loader import from_vggt_checkpoint, load_state_dict_file
    from vidllm.io import load_state_dict
    from vidllm.training.frozen_teachers import load_geometry_teacher

    return {
        "vidllm.io.load_state_dict": load_state_dict,
        "recon.vggt_loader.load_state_dict_file": load_state_dict_file,
        "recon.vggt_loader.from_vggt_checkpoint": from_vggt_checkpoint,
        "vidllm.training.frozen_teachers.load_geometry_teacher": load_geometry_teacher,
    }


@pytest.mark.parametrize("loader", sorted(_loaders()))
@pytest.mark.parametrize("wrap", [None, "lightning", "vggt"])
def test_every_loader_refuses_a_code_running_pickle(tmp_path, loader, wrap):
    marker = tmp_path / "pwned"
    path = _exploit(tmp_path / "evil.pt", marker, wrap)
    with pytest.raises(ValueError, match=r"evil\.pt.*refused to load.*could run code") as err:
        _loaders()[loader](path)
    assert "\n" not in str(err.value)
    assert not marker.exists(), f"{loader} executed code from the pickle"


def test_vidllm_fit_resume_refuses_a_code_running_checkpoint(tmp_path, synthetic_root, capsys):
    from tests.training.test_fit_cli import _tiny_fit
    from vidllm.cli import main

    marker = tmp_path / "pwned"
    evil = _exploit(tmp_path / "last.ckpt", marker, "lightning")
    args = _tiny_fit(2, synthetic_root)
    code = main([*args, "--trainer.max_steps", "2", "--out", str(tmp_path / "run"), "--ckpt_path", str(evil)])
    err = capsys.readouterr().err
    assert code == 1
    assert not marker.exists(), "Lightning resume executed code from the checkpoint"
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in err, err[-2000:]
    assert (
        errors[0].startswith("vidllm fit: error: --ckpt_path")
        and "last.ckpt" in errors[0]
        and "refused to load" in errors[0]
    ), errors
    assert not (tmp_path / "run" / "model").exists()  # nothing trained, nothing written


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"\x80\x02 not a pickle"])
def test_vidllm_fit_resume_from_a_garbage_checkpoint_is_one_line(tmp_path, synthetic_root, capsys, content):
    from tests.training.test_fit_cli import _tiny_fit
    from vidllm.cli import main

    (tmp_path / "bad.ckpt").write_bytes(content)
    args = _tiny_fit(2, synthetic_root)
    assert (
        main(
            [
                *args,
                "--trainer.max_steps",
                "1",
                "--out",
                str(tmp_path / "run"),
                "--ckpt_path",
                str(tmp_path / "bad.ckpt"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in err and "bad.ckpt" in errors[0], err[-2000:]


def test_garbage_weight_files_are_clear_errors(tmp_path):
    from recon.vggt_loader import load_state_dict_file
    from vidllm.io import load_state_dict

    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    (tmp_path / "junk.pt").write_bytes(b"PK\x03\x04 truncated zip")
    (tmp_path / "empty.pt").write_bytes(b"")
    for name in ("junk.safetensors", "junk.pt", "empty.pt"):
        for load in (load_state_dict, load_state_dict_file):
            with pytest.raises(ValueError, match=re.escape(name)) as err:
                load(tmp_path / name)
            assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- shape mismatches
def test_vidllm_load_weights_names_key_and_both_shapes(tokenizer, tmp_path):
    from tests.helpers import micro_config
    from vidllm.errors import CheckpointError
    from vidllm.io import save_safetensors
    from vidllm.model import VidLLM

    model = VidLLM(micro_config(), tokenizer)
    sd = model.weights_state_dict()
    key = next(k for k, v in sd.items() if v.ndim == 2)
    shape = tuple(sd[key].shape)
    bad = {**sd, key: torch.zeros(shape[0] + 1, shape[1])}
    pattern = rf"{re.escape(key)}: file \({shape[0] + 1}, {shape[1]}\) vs model \({shape[0]}, {shape[1]}\)"
    with pytest.raises(CheckpointError, match=pattern):
        model.load_weights(bad)
    model.save_pretrained(tmp_path / "m")
    save_safetensors(bad, tmp_path / "m" / "model.safetensors")
    with pytest.raises(CheckpointError, match=pattern):
        VidLLM.from_pretrained(tmp_path / "m", device="cpu")


def test_vggt_loader_names_key_and_both_shapes(tmp_path):
    from recon.model import ReconstructionModel
    from recon.vggt_loader import load_vggt_weights
    from tests.helpers import micro_config

    cfg = micro_config()
    model = ReconstructionModel(cfg.encoder, cfg.recon)
    sd = model.vggt_state_dict()
    key = "aggregator.camera_token"
    shape = tuple(sd[key].shape)
    bad = {**sd, key: torch.zeros(*shape[:-1], shape[-1] * 2)}
    with pytest.raises(ValueError, match=rf"shape mismatch for '{re.escape(key)}'") as err:
        load_vggt_weights(model, bad)
    assert str(tuple(bad[key].shape)) in str(err.value) and str(shape) in str(err.value), str(err.value)


# ----------------------------------------------------------------------------- source-tree scans
def _python_files():
    for d in SOURCE_DIRS:
        yield from sorted((ROOT / d).rglob("*.py"))


def _remote_code_violations(source: str, name: str) -> list[str]:
    bad = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "trust_remote_code" and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value is False
                ):
                    bad.append(f"{name}:{node.lineno}")
                if kw.arg is None and isinstance(kw.value, ast.Dict):  # **{"trust_remote_code": ...}
                    for k, v in zip(kw.value.keys, kw.value.values):
                        if (
                            isinstance(k, ast.Constant)
                            and k.value == "trust_remote_code"
                            and not (isinstance(v, ast.Constant) and v.value is False)
                        ):
                            bad.append(f"{name}:{node.lineno}")
    return bad


def test_trust_remote_code_is_never_enabled():
    assert _remote_code_violations("m = AutoModel.from_pretrained(p, trust_remote_code=flag)", "probe") == [
        "probe:1"
    ]  # the scan bites
    assert _remote_code_violations("m = f(p, **{'trust_remote_code': True})", "probe") == ["probe:1"]
    violations = [
        v for path in _python_files() for v in _remote_code_violations(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert not violations, f"trust_remote_code not literally False at {violations}"
    texts = [
        p
        for p in list((ROOT / "configs").rglob("*.yaml")) + list(_python_files())
        if re.search(r"trust_remote_code\s*[:=]\s*(True|true|1)\b", p.read_text())
    ]
    assert not texts, texts


def _unsafe_loads(source: str, name: str) -> list[str]:
    bad = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        kws = {kw.arg: kw.value for kw in node.keywords}
        if func in ("torch.load", "load") and func == "torch.load":
            wo = kws.get("weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                bad.append(f"{name}:{node.lineno} torch.load without weights_only=True")
        if func in ("pickle.load", "pickle.loads", "dill.load", "joblib.load", "cloudpickle.load"):
            bad.append(f"{name}:{node.lineno} {func}")
        if func.endswith("np.load") or func.endswith("numpy.load"):
            ap = kws.get("allow_pickle")
            if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                bad.append(f"{name}:{node.lineno} np.load(allow_pickle=...)")
        if func.endswith("yaml.load") or func.endswith("yaml.unsafe_load"):
            bad.append(f"{name}:{node.lineno} {func} (use yaml.safe_load)")
    return bad


def test_no_loader_can_unpickle_arbitrary_objects():
    assert _unsafe_loads("torch.load(p)\ntorch.load(p, weights_only=False)\npickle.load(f)\nyaml.load(s)", "probe") == [
        "probe:1 torch.load without weights_only=True",
        "probe:2 torch.load without weights_only=True",
        "probe:3 pickle.load",
        "probe:4 yaml.load (use yaml.safe_load)",
    ]
    violations = [v for path in _python_files() for v in _unsafe_loads(path.read_text(), str(path.relative_to(ROOT)))]
    assert not violations, violations
