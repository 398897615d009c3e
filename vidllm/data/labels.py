"""ScanNet label mapping: ``scannetv2-labels.combined.tsv`` (raw_category → nyu40) and ScanRefer's 18 classes.

The tsv is tab separated with a header row; the columns used are ``raw_category``,
``nyu40id`` and ``nyu40class``. Structural classes wall / floor / ceiling (nyu40 ids 1, 2, 22)
are dropped from GT boxes (votenet / ScanRefer rule).
"""

from __future__ import annotations

import csv
import functools
import os
from dataclasses import dataclass
from pathlib import Path

from vidllm.errors import DataError

__all__ = [
    "LabelMap",
    "read_label_map",
    "default_label_map_path",
    "STRUCTURAL_NYU40_IDS",
    "SCANREFER_CLASSES",
]

STRUCTURAL_NYU40_IDS = frozenset({1, 2, 22})
"""nyu40 ids of wall, floor and ceiling: never GT objects."""

SCANREFER_CLASSES = (
    "cabinet",
    "bed",
    "chair",
    "sofa",
    "table",
    "door",
    "window",
    "bookshelf",
    "picture",
    "counter",
    "desk",
    "curtain",
    "refrigerator",
    "shower curtain",
    "toilet",
    "sink",
    "bathtub",
    "others",
)
"""ScanRefer's 18 classes (17 nyu40 classes + 'others'), used for unique / multiple."""

_REQUIRED_COLUMNS = ("raw_category", "nyu40id", "nyu40class")


def default_label_map_path() -> Path:
    """The tsv slice shipped with the package (rows of the categories the synthetic generator uses)."""
    return Path(__file__).resolve().parents[1] / "resources" / "scannetv2-labels.synthetic.tsv"


@dataclass(frozen=True)
class LabelMap:
    """raw_category → (nyu40id, nyu40class) as read from a ``scannetv2-labels.combined.tsv``."""

    path: str
    nyu40id: dict[str, int]
    nyu40class: dict[str, str]

    def id_of(self, raw_category: str) -> int:
        """nyu40 id of a raw category (ScanNet aggregation label), 0 if the tsv has no such row."""
        return self.nyu40id.get(raw_category, 0)

    def scanrefer_class(self, object_name: str) -> str:
        """ScanRefer 18-class name of an ``object_name`` (underscores allowed); unknown → 'others'."""
        name = object_name.replace("_", " ")
        nyu_class = self.nyu40class.get(name)
        return nyu_class if nyu_class in SCANREFER_CLASSES[:-1] else "others"

    def is_structural(self, raw_category: str) -> bool:
        return self.id_of(raw_category) in STRUCTURAL_NYU40_IDS


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, mtime: float) -> LabelMap:
    ids: dict[str, int] = {}
    classes: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        missing = [c for c in _REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: label tsv lacks column(s) {missing}; header is {reader.fieldnames}")
        for index, row in enumerate(reader):
            raw = row["raw_category"]
            try:
                nyu_id = int(row["nyu40id"])
            except (TypeError, ValueError):
                raise DataError(
                    f"{path}: row {index}: field 'nyu40id' = {row['nyu40id']!r} is not an integer"
                ) from None
            ids[raw] = nyu_id
            classes[raw] = row["nyu40class"]
    return LabelMap(path=path, nyu40id=ids, nyu40class=classes)


def read_label_map(path: str | os.PathLike | None = None) -> LabelMap:
    """Read a ``scannetv2-labels.combined.tsv`` (default: the packaged slice); cached per file."""
    path = Path(path) if path is not None else default_label_map_path()
    if not path.is_file():
        raise DataError(f"label map not found: {path} (expected scannetv2-labels.combined.tsv)")
    return _read_cached(str(path.resolve()), path.stat().st_mtime)
