"""Synthetic room layouts: rooms with walls / floor / ceiling, furniture built from box primitives
with ScanNet raw categories, palette colours and plausible metric sizes, placed without overlap,
and an eye-height camera trajectory that sweeps the room.

All geometry here is in the *aligned* world (z up, floor at z = 0, room interior
``[0, W] × [0, D]``). Every object is a union of axis-aligned boxes, so its GT box (the AABB of
its mesh vertices) is exactly the union's extent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import get_args

import numpy as np

from vidllm.config import SyntheticTrajectory

__all__ = ["SceneObject", "RoomLayout", "make_layout", "camera_trajectory", "PALETTE", "CATEGORIES", "box_mesh"]

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 70, 200),
    "yellow": (230, 200, 40),
    "white": (235, 235, 235),
    "black": (30, 30, 30),
    "brown": (120, 75, 40),
    "gray": (128, 128, 128),
    "orange": (240, 130, 30),
    "purple": (130, 50, 160),
    "pink": (240, 140, 180),
}

# category → (size ranges (dx, dy, dz) min/max in metres, placement, sampling weight)
CATEGORIES: dict[str, tuple[tuple[tuple[float, float], ...], str, float]] = {
    "chair": (((0.45, 0.55), (0.45, 0.55), (0.8, 1.0)), "floor", 4.0),
    "table": (((1.0, 1.5), (0.7, 0.95), (0.7, 0.78)), "floor", 1.5),
    "desk": (((1.0, 1.4), (0.5, 0.7), (0.72, 0.78)), "floor", 1.0),
    "bed": (((1.9, 2.1), (1.0, 1.5), (0.9, 1.1)), "floor", 0.6),
    "sofa": (((1.6, 2.1), (0.8, 0.95), (0.8, 0.9)), "floor", 0.8),
    "cabinet": (((0.6, 1.0), (0.4, 0.6), (0.8, 1.2)), "floor", 1.2),
    "bookshelf": (((0.8, 1.2), (0.3, 0.4), (1.6, 2.0)), "floor", 0.8),
    "refrigerator": (((0.7, 0.8), (0.7, 0.8), (1.7, 1.9)), "floor", 0.4),
    "toilet": (((0.38, 0.45), (0.6, 0.7), (0.7, 0.8)), "floor", 0.3),
    "trash can": (((0.3, 0.4), (0.3, 0.4), (0.4, 0.6)), "floor", 1.0),
    "lamp": (((0.3, 0.4), (0.3, 0.4), (1.4, 1.7)), "floor", 0.8),
    "box": (((0.3, 0.6), (0.3, 0.6), (0.25, 0.5)), "floor", 1.0),
    "nightstand": (((0.4, 0.5), (0.35, 0.45), (0.5, 0.6)), "floor", 0.6),
    "ottoman": (((0.5, 0.7), (0.5, 0.7), (0.4, 0.45)), "floor", 0.5),
    "door": (((0.8, 0.95), (0.05, 0.06), (2.0, 2.1)), "wall", 0.8),
    "window": (((0.8, 1.4), (0.05, 0.07), (1.0, 1.3)), "wall", 0.8),
    "picture": (((0.4, 0.9), (0.03, 0.04), (0.3, 0.7)), "wall", 1.0),
    "whiteboard": (((1.2, 1.6), (0.03, 0.04), (0.9, 1.1)), "wall", 0.4),
}
_WALL_BOTTOM = {"door": (0.0, 0.0), "window": (0.8, 1.0), "picture": (1.2, 1.5), "whiteboard": (0.8, 0.95)}
STRUCTURE_COLORS = {"wall": (214, 205, 190), "floor": (150, 120, 90), "ceiling": (245, 245, 240)}


@dataclass
class SceneObject:
    """One object: its raw category, colour name and the axis-aligned box primitives ``[P, 2, 3]`` (lo, hi)."""

    category: str
    color: str
    parts: np.ndarray

    @property
    def box(self) -> np.ndarray:
        """``[6]`` AABB ``[cx, cy, cz, dx, dy, dz]`` of all parts."""
        lo, hi = self.parts[:, 0].min(0), self.parts[:, 1].max(0)
        return np.concatenate([(lo + hi) / 2, hi - lo])

    @property
    def rgb(self) -> tuple[int, int, int]:
        return STRUCTURE_COLORS.get(self.category) or PALETTE[self.color]


@dataclass
class RoomLayout:
    """A room: interior size (W, D, H), structural parts (walls, floor, ceiling) and objects."""

    size: tuple[float, float, float]
    structure: list[SceneObject] = field(default_factory=list)
    objects: list[SceneObject] = field(default_factory=list)
    cam_center: tuple[float, float] = (0.0, 0.0)
    cam_radii: tuple[float, float] = (0.0, 0.0)


def box_mesh(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``[8, 3]`` and outward-wound triangles ``[12, 3]`` of the box [lo, hi]."""
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float64)
    verts = lo + corners * (hi - lo)
    tris = np.array(
        [
            [0, 1, 3],
            [0, 3, 2],
            [4, 6, 7],
            [4, 7, 5],
            [0, 4, 5],
            [0, 5, 1],
            [2, 3, 7],
            [2, 7, 6],
            [0, 2, 6],
            [0, 6, 4],
            [1, 5, 7],
            [1, 7, 3],
        ],
        dtype=np.int64,
    )
    return verts, tris


def _parts(category: str, lo: np.ndarray, hi: np.ndarray, front: int) -> np.ndarray:
    """Primitive boxes of a category filling the footprint [lo, hi]; ``front`` ∈ {0..3} = +x, +y, −x, −y."""
    dx, dy, dz = hi - lo
    boxes: list[tuple[np.ndarray, np.ndarray]] = []

    def add(a, b):
        boxes.append((np.asarray(a, float), np.asarray(b, float)))

    def legs(height, t=0.05):
        for x0 in (lo[0], hi[0] - t):
            for y0 in (lo[1], hi[1] - t):
                add([x0, y0, lo[2]], [x0 + t, y0 + t, lo[2] + height])

    def back_slab(z0, thick):
        # slab on the side opposite to `front`
        if front == 0:
            add([lo[0], lo[1], z0], [lo[0] + thick, hi[1], hi[2]])
        elif front == 2:
            add([hi[0] - thick, lo[1], z0], [hi[0], hi[1], hi[2]])
        elif front == 1:
            add([lo[0], lo[1], z0], [hi[0], lo[1] + thick, hi[2]])
        else:
            add([lo[0], hi[1] - thick, z0], [hi[0], hi[1], hi[2]])

    if category == "chair":
        seat = lo[2] + 0.45
        legs(seat - 0.04)
        add([lo[0], lo[1], seat - 0.04], [hi[0], hi[1], seat])
        back_slab(seat, 0.06)
    elif category in ("table", "desk"):
        legs(dz - 0.04)
        add([lo[0], lo[1], hi[2] - 0.04], hi)
    elif category == "bed":
        add(lo, [hi[0], hi[1], lo[2] + 0.35])
        add([lo[0] + 0.03, lo[1] + 0.03, lo[2] + 0.35], [hi[0] - 0.03, hi[1] - 0.03, lo[2] + 0.55])
        back_slab(lo[2], 0.08)
    elif category == "sofa":
        add(lo, [hi[0], hi[1], lo[2] + 0.42])
        back_slab(lo[2] + 0.42, 0.2)
    elif category == "bookshelf":
        back_slab(lo[2], 0.03)
        for z0 in np.linspace(lo[2], hi[2] - 0.03, 4):
            add([lo[0], lo[1], z0], [hi[0], hi[1], z0 + 0.03])
    elif category == "lamp":
        c = (lo + hi) / 2
        add([lo[0] + 0.05, lo[1] + 0.05, lo[2]], [hi[0] - 0.05, hi[1] - 0.05, lo[2] + 0.04])
        add([c[0] - 0.02, c[1] - 0.02, lo[2] + 0.04], [c[0] + 0.02, c[1] + 0.02, hi[2] - 0.3])
        add([lo[0], lo[1], hi[2] - 0.3], hi)
    elif category == "toilet":
        add([lo[0] + 0.05 * dx, lo[1] + 0.05 * dy, lo[2]], [hi[0] - 0.05 * dx, hi[1] - 0.05 * dy, lo[2] + 0.42])
        back_slab(lo[2], 0.18)
    else:  # cabinet, refrigerator, trash can, box, nightstand, ottoman, wall items: one solid body
        add(lo, hi)
    return np.stack([np.stack(b) for b in boxes])


def _overlaps(lo, hi, placed, margin):
    for plo, phi in placed:
        if np.all(lo < phi + margin) and np.all(hi > plo - margin):
            return True
    return False


def make_layout(rng: np.random.Generator, min_objects: int = 4, max_objects: int = 12) -> RoomLayout:
    """Sample a room with ``min_objects``..``max_objects`` non-overlapping objects."""
    width, depth, height = rng.uniform(4.0, 7.0), rng.uniform(3.6, 6.0), rng.uniform(2.5, 3.0)
    layout = RoomLayout(size=(width, depth, height))
    t = 0.1
    for cat, lo, hi in [
        ("floor", [-t, -t, -t], [width + t, depth + t, 0.0]),
        ("ceiling", [-t, -t, height], [width + t, depth + t, height + t]),
        ("wall", [-t, 0, 0], [0, depth, height]),
        ("wall", [width, 0, 0], [width + t, depth, height]),
        ("wall", [0, -t, 0], [width, 0, height]),
        ("wall", [0, depth, 0], [width, depth + t, height]),
    ]:
        layout.structure.append(SceneObject(cat, cat, np.asarray([[lo, hi]], dtype=np.float64)))
    center = np.array([width / 2, depth / 2]) + rng.uniform(-0.2, 0.2, 2)
    radii = np.array([0.14 * width, 0.14 * depth])
    layout.cam_center, layout.cam_radii = (float(center[0]), float(center[1])), (float(radii[0]), float(radii[1]))
    keep_lo = np.r_[center - radii - 0.45, -1.0]
    keep_hi = np.r_[center + radii + 0.45, 10.0]
    placed: list[tuple[np.ndarray, np.ndarray]] = [(keep_lo, keep_hi)]
    names = list(CATEGORIES)
    weights = np.array([CATEGORIES[n][2] for n in names])
    target = int(rng.integers(min_objects, max_objects + 1))
    attempts = 0
    while len(layout.objects) < target and attempts < 400:
        attempts += 1
        cat = names[rng.choice(len(names), p=weights / weights.sum())]
        ranges, where, _ = CATEGORIES[cat]
        size = np.array([rng.uniform(a, b) for a, b in ranges])
        wall = int(rng.integers(4))  # 0: x=0, 1: x=W, 2: y=0, 3: y=D
        if where == "floor" and rng.random() < 0.5:
            wall = -1  # free-standing
        front = {0: 0, 1: 2, 2: 1, 3: 3, -1: int(rng.integers(4))}[wall]
        if front in (0, 2):  # object faces ±x: its width runs along y
            size = size[[1, 0, 2]]
        if where == "wall":
            z0 = rng.uniform(*_WALL_BOTTOM[cat])
            gap = 0.0
        else:
            z0, gap = 0.0, rng.uniform(0.02, 0.1)
        lo = np.zeros(3)
        for axis, extent in ((0, width), (1, depth)):
            lo[axis] = rng.uniform(0.05, extent - size[axis] - 0.05)
        if wall == 0:
            lo[0] = gap
        elif wall == 1:
            lo[0] = width - gap - size[0]
        elif wall == 2:
            lo[1] = gap
        elif wall == 3:
            lo[1] = depth - gap - size[1]
        lo[2] = z0
        hi = lo + size
        if hi[0] > width or hi[1] > depth or lo[0] < 0 or lo[1] < 0 or hi[2] > height - 0.05:
            continue
        if _overlaps(lo, hi, placed, 0.05):
            continue
        placed.append((lo, hi))
        color = list(PALETTE)[int(rng.integers(len(PALETTE)))]
        layout.objects.append(SceneObject(cat, color, _parts(cat, lo, hi, front)))
    return layout


def _look(forward: np.ndarray) -> np.ndarray:
    """Camera→world rotation ``[3, 3]`` (OpenCV axes) looking along ``forward`` with world z up."""
    f = forward / np.linalg.norm(forward)
    right = np.cross(f, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(f, right)
    return np.stack([right, down, f], axis=1)


TRAJECTORIES = get_args(SyntheticTrajectory)


def camera_trajectory(
    layout: RoomLayout,
    num_frames: int,
    rng: np.random.Generator,
    kind: SyntheticTrajectory = "loop",
    arc_degrees: float = 120.0,
) -> np.ndarray:
    """Camera→world poses ``[F, 4, 4]`` (aligned world) at eye height, looking outward and slightly down.

    ``kind="loop"``: a loop around the room centre sweeping 360° (every wall is seen), with
    independent yaw/pitch jitter per frame — a sparse scan. ``kind="walk"``: a handheld video —
    the camera walks ``arc_degrees`` along the edge of the object-free zone while keeping a point
    on the far side of the room in view (more translation than rotation, so frames overlap and
    show parallax); yaw, pitch and height wobble with slow sinusoids, so consecutive frames differ
    by a small, smooth motion.
    """
    if kind == "walk":
        return _walk_trajectory(layout, num_frames, rng, arc_degrees)
    if kind != "loop":
        raise ValueError(f"synthetic trajectory {kind!r}; expected one of {list(TRAJECTORIES)}")
    start = rng.uniform(0, 2 * np.pi)
    phis = start + np.linspace(0, 2 * np.pi, num_frames, endpoint=False) * rng.choice([-1.0, 1.0])
    eye = rng.uniform(1.35, 1.6)
    poses = np.tile(np.eye(4), (num_frames, 1, 1))
    cx, cy = layout.cam_center
    rx, ry = layout.cam_radii
    for i, phi in enumerate(phis):  # F ≤ a few hundred: a pose each, not a hot path
        pos = np.array([cx + rx * np.cos(phi), cy + ry * np.sin(phi), eye + 0.05 * np.sin(3 * phi)])
        yaw = phi + rng.uniform(-0.25, 0.25)
        pitch = -rng.uniform(0.25, 0.45)
        forward = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)])
        poses[i, :3, :3] = _look(forward)
        poses[i, :3, 3] = pos
    return poses


def _walk_trajectory(layout: RoomLayout, num_frames: int, rng: np.random.Generator, arc_degrees: float) -> np.ndarray:
    cx, cy = layout.cam_center
    rx, ry = layout.cam_radii[0] + 0.3, layout.cam_radii[1] + 0.3  # the edge of the object-free zone
    mid = rng.uniform(0, 2 * np.pi)  # the middle of the walk on the ellipse
    direction = rng.choice([-1.0, 1.0])
    t = np.linspace(0.0, 1.0, num_frames)
    phis = mid + direction * np.deg2rad(arc_degrees) * (t - 0.5)
    # the camera keeps a point beyond the room centre, on the far side, in view
    away = np.array([-np.cos(mid), -np.sin(mid)])
    reach = 0.5 * min(layout.size[0], layout.size[1]) / 2
    target = np.array([cx + reach * away[0], cy + reach * away[1], rng.uniform(0.4, 0.8)])
    eye = rng.uniform(1.35, 1.6)
    wobble = rng.uniform(0, 2 * np.pi, 3)  # phases of the slow yaw / pitch / height wobbles
    yaw_amp = rng.uniform(0.02, 0.05)
    poses = np.tile(np.eye(4), (num_frames, 1, 1))
    for i, phi in enumerate(phis):  # F ≤ a few hundred: a pose each, not a hot path
        pos = np.array(
            [cx + rx * np.cos(phi), cy + ry * np.sin(phi), eye + 0.04 * np.sin(2 * np.pi * t[i] + wobble[2])]
        )
        look = target - pos
        yaw = np.arctan2(look[1], look[0]) + yaw_amp * np.sin(2 * np.pi * 1.5 * t[i] + wobble[0])
        pitch = np.arctan2(look[2], np.linalg.norm(look[:2])) + 0.03 * np.sin(2 * np.pi * t[i] + wobble[1])
        forward = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)])
        poses[i, :3, :3] = _look(forward)
        poses[i, :3, 3] = pos
    return poses
