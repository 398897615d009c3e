"""Writing evaluation outputs (atomically) and printing metric tables."""

from __future__ import annotations

import json
from pathlib import Path

from vidllm.io import atomic_write

__all__ = ["write_json", "write_outputs", "format_table"]


def write_json(path: str | Path, data) -> Path:
    """JSON with 2-space indent, written to a temp file and renamed."""
    path = Path(path)
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2, default=float)
        f.write("\n")
    return path


def write_outputs(out_dir: str | Path, predictions, metrics: dict) -> tuple[Path, Path]:
    """``out_dir/predictions.json`` and ``out_dir/metrics.json``."""
    out = Path(out_dir)
    return write_json(out / "predictions.json", predictions), write_json(out / "metrics.json", metrics)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def format_table(metrics: dict, title: str = "") -> str:
    """A plain-text table of ``{row: {column: value}}`` (nested) or ``{name: value}`` (flat) metrics."""
    notes = metrics.get("unavailable") or {}
    metrics = {k: v for k, v in metrics.items() if k != "unavailable"}
    rows = {
        k: v for k, v in metrics.items() if isinstance(v, dict) and all(not isinstance(x, dict) for x in v.values())
    }
    flat = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
    lines = [title] if title else []
    if rows:
        cols: list[str] = []
        for v in rows.values():
            cols += [c for c in v if c not in cols]
        width = max(len(r) for r in rows) + 2
        lines.append("".join([" " * width] + [f"{c:>12}" for c in cols]))
        for name, v in rows.items():
            lines.append(f"{name:<{width}}" + "".join(f"{_fmt(v.get(c)):>12}" for c in cols))
    for k, v in flat.items():
        lines.append(f"{k:<24}{_fmt(v):>12}")
    lines += [f"unavailable: {k}: {v}" for k, v in notes.items()]
    return "\n".join(lines)
