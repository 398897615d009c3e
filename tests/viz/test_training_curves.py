"""Training-curve picture: panel grouping of the logged losses, the smoothing, and the PNG itself."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from vidllm.viz import curve_group, smooth, training_curves


@pytest.mark.parametrize(
    ("key", "group"),
    [
        ("train/loss", "total"),
        ("train/recon/loss", "total"),
        ("train/recon/loss_camera", "camera"),
        ("train/recon/loss_R", "camera"),
        ("train/recon/loss_FoV", "camera"),
        ("train/recon/loss_depth", "depth"),
        ("train/recon/loss_md", "depth"),
        ("train/vl/lm_loss", "language"),
        ("train/vl/loss", "language"),
        ("train/geo", "distillation"),
        ("train/sc", "distillation"),
        ("train/recon/loss_conf_depth", None),  # a part of loss_depth, which is drawn
        ("train/loss_step", None),
        ("val/loss", None),
        ("lr-AdamW", None),
    ],
)
def test_curve_group(key, group):
    assert curve_group(key) == group


def test_smooth_is_a_trailing_mean():
    v = np.array([1.0, 3.0, 5.0, 7.0, 9.0])
    expected = [1.0, 2.0, 3.0, 5.0, 7.0]  # window 3: mean of the last <= 3 values
    np.testing.assert_allclose(smooth(v, 3), expected)
    np.testing.assert_allclose(smooth(v, 1), v)


def test_training_curves_writes_one_png_with_a_panel_per_group(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    keys = ["train/loss", "train/recon/loss_camera", "train/recon/loss_depth", "train/vl/lm_loss"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "step", *keys])
        for step in range(0, 200, 5):
            w.writerow([0, step, *(f"{1.0 + np.exp(-step / 50) * (i + 1):.4f}" for i in range(len(keys)))])
    import matplotlib.figure

    titles: list[str] = []
    original = matplotlib.figure.Figure.savefig

    def record(fig, *args, **kwargs):
        titles.extend(ax.get_title() for ax in fig.axes if ax.get_visible())
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    out = training_curves(tmp_path / "curves.png", [("stage 2", path)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert titles == ["stage 2 · total", "stage 2 · camera", "stage 2 · depth", "stage 2 · language"]
