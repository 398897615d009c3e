"""Shared helpers of the benchmark scripts: timing, peak memory, machine description, output.

Peak memory
-----------
* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the memory
  allocated before the measured call (weights, inputs) — the extra memory the call needs.
* CPU: the process's resident-set high-water mark. Before each measured call the freed heap is
  returned to the OS (``malloc_trim``), the kernel's high-water mark is reset
  (``/proc/self/clear_refs`` ← ``5``, Linux ≥ 4.0) and the current RSS is the baseline; after the
  call ``VmHWM − baseline`` is the extra resident memory of the call. The scripts run each
  configuration in a fresh subprocess with a fixed glibc mmap threshold (large tensors are
  ``mmap``-ed and returned on free), so RSS tracks live tensor bytes. Where the high-water mark
  cannot be reset, ``resource.getrusage().ru_maxrss`` minus the RSS before the call is used (an
  upper bound polluted by earlier calls in the same process; reported as such).
"""

from __future__ import annotations

import ctypes
import gc
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from vidllm.machine import machine_info  # noqa: F401  (re-exported for the bench scripts)

ROOT = Path(__file__).resolve().parents[1]

# glibc: a fixed mmap threshold disables the dynamic one, so big blocks go back to the OS when freed
SUBPROCESS_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def _status_kib(field: str) -> int | None:
    try:
        found = re.search(rf"^{field}:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(found.group(1)) if found else None


def _trim_heap() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (``None``/0: unchanged) and restore the caller's count
    afterwards (``--inprocess`` runs and tests must not leave it changed)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(fn: Callable[[], object], device: torch.device) -> tuple[float, str]:
    """Extra peak memory (bytes) of one call of ``fn`` beyond what was allocated before it, and the method used."""
    if device.type == "cuda":
        sync(device)
        gc.collect()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        sync(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del out
        return float(peak), "cuda.max_memory_allocated"
    _trim_heap()
    base = _status_kib("VmRSS")
    if base is not None and _reset_hwm():
        out = fn()
        peak = _status_kib("VmHWM") - base
        del out
        return float(peak) * 1024, "rss_high_water_mark"
    before = _status_kib("VmRSS") or 0
    out = fn()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    del out
    return float(max(maxrss - before, 0)) * 1024, "ru_maxrss_upper_bound"


def time_call(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def run_worker(script: Path, spec: dict, timeout: float | None = None) -> dict:
    """Run ``script --worker JSON`` in a fresh Python process; returns the JSON it prints last."""
    env = {**os.environ, **SUBPROCESS_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    result = subprocess.run(
        [sys.executable, str(script), "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{script.name} worker failed for {spec}:\n{result.stderr[-4000:]}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def finite_positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def write_json(path: str | os.PathLike | None, payload: dict) -> None:
    if path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2))


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """``columns``: (key, header, format) — e.g. ``("time_ms", "ms", "{:.1f}")``."""
    cells = [[h for _, h, _ in columns]]
    for row in rows:
        cells.append([("-" if row.get(k) is None else fmt.format(row[k])) for k, _, fmt in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for r in cells:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
