"""Pictures (matplotlib, headless): point-cloud previews with boxes, depth comparisons, training curves.

Every function writes a PNG atomically and returns its path.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidllm.io import atomic_write

__all__ = ["render_pointcloud", "depth_comparison", "training_curves", "curve_group", "smooth", "box_edges"]

_EDGES = [(0, 1), (1, 3), (3, 2), (2, 0), (4, 5), (5, 7), (7, 6), (6, 4), (0, 4), (1, 5), (2, 6), (3, 7)]


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, plt) -> Path:
    path = Path(path)
    with atomic_write(path, None) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def box_edges(box: Sequence[float]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 12 edges (pairs of ``[3]`` corners) of an axis-aligned box ``[cx, cy, cz, dx, dy, dz]``."""
    c, h = np.asarray(box[:3], float), np.asarray(box[3:6], float) / 2
    corners = np.array([c + h * np.array([sx, sy, sz]) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    return [(corners[a], corners[b]) for a, b in _EDGES]


def render_pointcloud(
    path: str | Path,
    points: np.ndarray,
    colors: np.ndarray | None = None,
    boxes: Sequence[tuple[np.ndarray, str, str]] = (),
    camera_centers: np.ndarray | None = None,
    title: str = "",
    max_points: int = 30000,
    up_axis: int = 2,
    seed: int = 0,
) -> Path:
    """Two views of a cloud (oblique 3D and top-down) with box wireframes.

    Args:
        points: ``[N, 3]``; colors ``[N, 3]`` in [0, 1]; boxes: ``(boxes [K, 6], colour, label)`` groups;
        camera_centers: ``[S, 3]`` drawn as a trajectory; up_axis: the vertical axis (2 = z up in
        the aligned world, 1 for the model frame whose y points down).
    """
    plt = _figure()
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    cols = np.clip(np.asarray(colors, dtype=np.float64).reshape(-1, 3), 0, 1) if colors is not None else None
    if len(pts) > max_points:
        keep = np.random.default_rng(seed).choice(len(pts), max_points, replace=False)
        pts, cols = pts[keep], (cols[keep] if cols is not None else None)
    horiz = [a for a in range(3) if a != up_axis]
    fig = plt.figure(figsize=(12, 5.5))
    ax3 = fig.add_subplot(1, 2, 1, projection="3d")
    ax2 = fig.add_subplot(1, 2, 2)
    order = [horiz[0], horiz[1], up_axis]
    sign = -1.0 if up_axis == 1 else 1.0  # the model frame's y points down

    def view(p):
        q = p[..., order].copy()
        q[..., 2] *= sign
        return q

    if len(pts):
        v = view(pts)
        ax3.scatter(v[:, 0], v[:, 1], v[:, 2], c=cols, s=0.5, depthshade=False)
        ax2.scatter(pts[:, horiz[0]], pts[:, horiz[1]], c=cols, s=0.5)
    for group, color, label in boxes:
        for i, box in enumerate(np.asarray(group, dtype=np.float64).reshape(-1, 6)):
            for k, (a, b) in enumerate(box_edges(box)):
                seg = view(np.stack([a, b]))
                ax3.plot(
                    seg[:, 0],
                    seg[:, 1],
                    seg[:, 2],
                    color=color,
                    linewidth=1.5,
                    label=label if i == 0 and k == 0 else None,
                )
            c, h = box[:3], box[3:6] / 2
            ax2.add_patch(
                plt.Rectangle(
                    (c[horiz[0]] - h[horiz[0]], c[horiz[1]] - h[horiz[1]]),
                    2 * h[horiz[0]],
                    2 * h[horiz[1]],
                    fill=False,
                    edgecolor=color,
                    linewidth=1.5,
                    label=label if i == 0 else None,
                )
            )
    if camera_centers is not None and len(camera_centers):
        cc = np.asarray(camera_centers, dtype=np.float64)
        vc = view(cc)
        ax3.plot(vc[:, 0], vc[:, 1], vc[:, 2], "k.-", markersize=3, linewidth=0.8)
        ax2.plot(cc[:, horiz[0]], cc[:, horiz[1]], "k.-", markersize=3, linewidth=0.8, label="cameras")
    ax3.view_init(elev=35, azim=-60)
    ax3.set_title("oblique view")
    ax2.set_aspect("equal")
    ax2.set_title("top view (metres)")
    if boxes or camera_centers is not None:
        ax2.legend(loc="upper right", fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path, plt)


def depth_comparison(
    path: str | Path, images: np.ndarray, rows: Sequence[tuple[str, np.ndarray]], max_frames: int = 4, title: str = ""
) -> Path:
    """A grid: frames on top, then one row per depth map set (``(label, [S, H, W])``), shared colour scale per column."""
    plt = _figure()
    s = min(max_frames, len(images))
    fig, axes = plt.subplots(1 + len(rows), s, figsize=(3 * s, 2.4 * (1 + len(rows))), squeeze=False)
    for j in range(s):
        axes[0, j].imshow(images[j])
        axes[0, j].set_title(f"frame {j}", fontsize=9)
        valid = [r[1][j][np.isfinite(r[1][j]) & (r[1][j] > 0)] for r in rows]
        vmax = max((float(np.percentile(v, 98)) for v in valid if v.size), default=1.0)
        for i, (label, depth) in enumerate(rows, start=1):
            im = axes[i, j].imshow(np.where(depth[j] > 0, depth[j], np.nan), cmap="turbo", vmin=0, vmax=vmax)
            if j == 0:
                axes[i, j].set_ylabel(label, fontsize=9)
        fig.colorbar(im, ax=axes[1:, j].tolist(), fraction=0.05, label="m")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return _save(fig, path, plt)


def read_metrics_csv(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Lightning ``CSVLogger`` metrics → ``{column: [(step, value), ...]}`` (empty cells skipped)."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = row.get("step")
            if step in (None, ""):
                continue
            for key, value in row.items():
                if key in ("step", "epoch") or value in (None, ""):
                    continue
                try:
                    series.setdefault(key, []).append((int(float(step)), float(value)))
                except ValueError:
                    continue
    return series


_CURVE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("camera", ("camera", "loss_t", "loss_r", "fov", "pose", "rel_pose")),
    ("depth", ("depth", "point", "metric", "md")),
    ("language", ("vl/", "lm", "ground", "proposal", "regress", "caption", "qa")),
    ("distillation", ("distill",)),
)
_DISTILL_TERMS = ("geo", "lang", "sc")  # the stage-1 terms (Eq. 5–7)
_COMPONENT_PARTS = ("loss_conf_", "loss_reg_", "loss_grad_")


def curve_group(key: str) -> str | None:
    """The panel of a logged ``train/...`` loss: 'total', 'camera', 'depth', 'language' or 'distillation';
    None for keys that are not drawn (non-``train/`` keys, Lightning's ``*_step``/``*_epoch`` copies and the
    confidence / regression / gradient parts of the depth and point losses, whose sum is drawn)."""
    if not key.startswith("train/") or key.endswith(("_step", "_epoch")):
        return None
    name = key.removeprefix("train/").lower()
    if name == "loss":
        return "total"
    if any(part in name for part in _COMPONENT_PARTS):
        return None
    if name.startswith("vl/"):
        return "language"
    leaf = name.rsplit("/", 1)[-1]
    if leaf in _DISTILL_TERMS:
        return "distillation"
    if leaf == "loss":
        return "total"
    for group, needles in _CURVE_GROUPS:
        if any(n in leaf for n in needles):
            return group
    return "total"


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over ``window`` points (shorter at the start): ``[N]`` → ``[N]``."""
    v = np.asarray(values, dtype=np.float64)
    if window <= 1 or v.size == 0:
        return v
    c = np.cumsum(np.r_[0.0, v])
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def training_curves(
    path: str | Path, runs: Sequence[tuple[str, str | Path]], keys: Sequence[str] | None = None, title: str = ""
) -> Path:
    """Loss curves of one or more runs (``(label, metrics.csv)``): one panel per run and task group
    (:func:`curve_group`: total, camera, depth, language, distillation), each curve a trailing mean over
    about 1/20 of the run drawn over its raw values (faint), the legend under the panel.

    ``keys`` restricts the drawn columns (default: every ``train/*`` loss).
    """
    plt = _figure()
    panels: list[tuple[str, dict[str, list[tuple[int, float]]]]] = []
    for label, csv_path in runs:
        series = read_metrics_csv(csv_path)
        groups: dict[str, dict[str, list[tuple[int, float]]]] = {}
        for name, points in series.items():
            group = curve_group(name) if keys is None else ("total" if name in keys else None)
            if group is not None and points:
                groups.setdefault(group, {})[name] = points
        order = ["total"] + [g for g, _ in _CURVE_GROUPS]
        panels += [(f"{label} · {g}", groups[g]) for g in order if g in groups]
    cols = min(3, max(1, len(panels)))
    rows = max(1, -(-len(panels) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    for ax, (panel_title, curves) in zip(axes.ravel(), panels):
        lowest = np.inf
        for name in sorted(curves):
            steps, values = (np.asarray(x) for x in zip(*curves[name]))
            window = max(1, len(values) // 20)
            (line,) = ax.plot(steps, smooth(values, window), linewidth=1.6, label=name.removeprefix("train/"))
            ax.plot(steps, values, linewidth=0.6, alpha=0.25, color=line.get_color())
            lowest = min(lowest, float(values.min()))
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("step")
        ax.set_yscale("log" if lowest > 0 else "symlog", **({} if lowest > 0 else {"linthresh": 0.1}))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, plt)
