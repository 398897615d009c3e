"""``import vidllm.model`` loads the model and nothing of the Python API around it: no data readers
(ScanNet, annotations, datasets), no video decoding, no point-cloud or plotting libraries. The API
(:class:`vidllm.api.VidLLMPipeline`) wraps the model, so only importing the API brings those in.

Checked in a fresh interpreter: ``sys.modules`` of the test process already holds everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = (
    "vidllm.api",
    "vidllm.data",
    "vidllm.video",
    "vidllm.evaluation",
    "vidllm.synthetic",
    "vidllm.viz",
    "vidllm.training",
    "vidllm.commands",
    "open3d",
    "cv2",
    "av",
    "decord",
    "imageio",
    "imageio_ffmpeg",
    "matplotlib",
    "lightning",
    "pytorch_lightning",
)
"""Module prefixes that ``import vidllm.model`` must not load (PIL is not listed: transformers imports it)."""


def _modules_after(statement: str) -> list[str]:
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _forbidden(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in FORBIDDEN)]


def test_import_model_loads_no_readers_decoders_or_api():
    modules = _modules_after("import vidllm.model")
    assert "vidllm.model" in modules and "vl.branch" in modules  # the model itself did load
    assert _forbidden(modules) == []


def test_the_api_brings_the_readers_in():
    """The check above can fail: the API module does load the frame readers the model leaves out."""
    modules = _modules_after("import vidllm.api")
    assert {"vidllm.api", "vidllm.video", "vidllm.data.clip"} <= set(_forbidden(modules))
