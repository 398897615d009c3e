"""Readers of the public 3D vision–language annotation files → typed records.

ScanRefer, ScanQA, SQA3D (questions joined with annotations on ``question_id``), Scan2Cap
references (ScanRefer descriptions grouped per object), Multi3DRefer and Nr3D / Sr3D CSV. A
malformed file raises :class:`~vidllm.errors.DataError` naming the file, the record index and
the field. ``scene_ids`` (optional, on every reader) rejects records of unknown scenes.
"""

from __future__ import annotations

import ast
import csv
import os
import re
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from vidllm.data.labels import LabelMap, read_label_map
from vidllm.data.scannet_io import read_json
from vidllm.errors import DataError

__all__ = [
    "ScanReferRecord",
    "ScanQARecord",
    "SQA3DRecord",
    "Multi3DReferRecord",
    "ReferIt3DRecord",
    "read_scanrefer",
    "read_scanqa",
    "read_sqa3d",
    "read_multi3drefer",
    "read_referit3d_csv",
    "scan2cap_references",
    "unique_multiple_flags",
    "MULTI3DREFER_EVAL_TYPES",
]

SCENE_ID_RE = re.compile(r"^scene\d{4}_\d{2}$")
MULTI3DREFER_EVAL_TYPES = ("zt_w_d", "zt_wo_d", "st_w_d", "st_wo_d", "mt")


@dataclass
class ScanReferRecord:
    """One ScanRefer description. ``eval_type`` is 'unique' or 'multiple' (computed)."""

    scene_id: str
    object_id: int
    object_name: str
    ann_id: int
    description: str
    tokens: list[str] = field(default_factory=list)
    eval_type: str = ""


@dataclass
class ScanQARecord:
    """One ScanQA question (``answers`` empty for the test splits)."""

    scene_id: str
    question_id: str
    question: str
    answers: list[str]
    object_ids: list[int]
    object_names: list[str]


@dataclass
class SQA3DRecord:
    """One SQA3D question with its situation and (from the annotations file) answers and agent pose.

    ``position`` is ``(x, y, z)``; ``rotation`` the quaternion ``(x, y, z, w)``.
    """

    scene_id: str
    question_id: int
    situation: str
    alternative_situations: list[str]
    question: str
    answers: list[str]
    position: tuple[float, float, float]
    rotation: tuple[float, float, float, float]
    question_type: str = ""
    answer_type: str = ""


@dataclass
class Multi3DReferRecord:
    """One Multi3DRefer description (``object_ids`` may be empty: zero-target)."""

    scene_id: str
    object_name: str
    object_ids: list[int]
    ann_id: int
    description: str
    eval_type: str


@dataclass
class ReferIt3DRecord:
    """One Nr3D / Sr3D utterance; other CSV columns are kept verbatim in ``extra``."""

    scene_id: str
    target_id: int
    utterance: str
    stimulus_id: str
    instance_type: str
    tokens: list[str]
    extra: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers
class _Fields:
    """Typed field access on one JSON record with errors naming file, record index and field."""

    def __init__(self, path: Path, index: int, record, scene_ids: Collection[str] | None):
        if not isinstance(record, dict):
            raise DataError(f"{path}: record {index}: expected an object, got {type(record).__name__}")
        self.path, self.index, self.record, self.scene_ids = path, index, record, scene_ids

    def fail(self, key: str, why: str):
        raise DataError(f"{self.path}: record {self.index}: field '{key}' {why}")

    def get(self, key: str):
        if key not in self.record:
            self.fail(key, "missing")
        return self.record[key]

    def str(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            self.fail(key, f"must be a string, got {value!r}")
        return value

    def int(self, key: str) -> int:
        value = self.get(key)
        try:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            self.fail(key, f"must be an integer (or an integer string), got {value!r}")

    def list(self, key: str, kind=str, default=None) -> list:
        if default is not None and key not in self.record:
            return default
        value = self.get(key)
        if not isinstance(value, list):
            self.fail(key, f"must be a list, got {type(value).__name__}")
        try:
            return [kind(v) if not isinstance(v, bool) else self.fail(key, "holds a boolean") for v in value]
        except (TypeError, ValueError):
            self.fail(key, f"must be a list of {kind.__name__}, got {value!r}")

    def scene(self, key: str = "scene_id") -> str:
        value = self.str(key)
        if not SCENE_ID_RE.match(value):
            self.fail(key, f"= {value!r} is not a ScanNet scene id (sceneXXXX_XX)")
        if self.scene_ids is not None and value not in self.scene_ids:
            self.fail(key, f"= {value!r} names an unknown scene (not among the {len(self.scene_ids)} loaded scenes)")
        return value


def _records(path: str | os.PathLike, container_key: str | None = None) -> tuple[Path, list]:
    path = Path(path)
    data = read_json(path)
    if container_key is not None:
        if not isinstance(data, dict) or container_key not in data:
            raise DataError(f"{path}: top-level field '{container_key}' missing")
        data = data[container_key]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of records, got {type(data).__name__}")
    return path, data


# --------------------------------------------------------------------------- ScanRefer
def unique_multiple_flags(records: list[ScanReferRecord], label_map: LabelMap) -> list[str]:
    """'unique' / 'multiple' per record: unique iff exactly one annotated object of its scene (in
    these records) has the same ScanRefer 18-class as the record's object."""
    classes_per_scene: dict[str, dict[int, str]] = defaultdict(dict)
    for rec in records:
        classes_per_scene[rec.scene_id][rec.object_id] = label_map.scanrefer_class(rec.object_name)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for scene_id, objects in classes_per_scene.items():
        for cls in objects.values():
            counts[(scene_id, cls)] += 1
    return [
        "unique" if counts[(r.scene_id, label_map.scanrefer_class(r.object_name))] == 1 else "multiple" for r in records
    ]


def read_scanrefer(
    path: str | os.PathLike,
    label_map: LabelMap | str | os.PathLike | None = None,
    scene_ids: Collection[str] | None = None,
) -> list[ScanReferRecord]:
    """Read ``ScanRefer_filtered_<split>.json`` and compute each record's unique/multiple type."""
    path, data = _records(path)
    records = []
    for index, raw in enumerate(data):
        f = _Fields(path, index, raw, scene_ids)
        tokens = f.list("token", str, default=[])
        records.append(
            ScanReferRecord(
                f.scene(), f.int("object_id"), f.str("object_name"), f.int("ann_id"), f.str("description"), tokens
            )
        )
    labels = label_map if isinstance(label_map, LabelMap) else read_label_map(label_map)
    for rec, flag in zip(records, unique_multiple_flags(records, labels)):
        rec.eval_type = flag
    return records


def scan2cap_references(records: list[ScanReferRecord]) -> dict[tuple[str, int], list[str]]:
    """Scan2Cap references: ``(scene_id, object_id) -> [descriptions]`` in file order."""
    refs: dict[tuple[str, int], list[str]] = defaultdict(list)
    for rec in records:
        refs[(rec.scene_id, rec.object_id)].append(rec.description)
    return dict(refs)


# --------------------------------------------------------------------------- ScanQA
def read_scanqa(path: str | os.PathLike, scene_ids: Collection[str] | None = None) -> list[ScanQARecord]:
    """Read ``ScanQA_v1.0_<split>.json`` (test splits carry no ``answers``: empty list)."""
    path, data = _records(path)
    records = []
    for index, raw in enumerate(data):
        f = _Fields(path, index, raw, scene_ids)
        records.append(
            ScanQARecord(
                scene_id=f.scene(),
                question_id=str(f.get("question_id")),
                question=f.str("question"),
                answers=f.list("answers", str, default=[]),
                object_ids=f.list("object_ids", int, default=[]),
                object_names=f.list("object_names", str, default=[]),
            )
        )
    return records


# --------------------------------------------------------------------------- SQA3D
def _float_triplet(f: _Fields, key: str, names: tuple[str, ...]) -> tuple[float, ...]:
    value = f.get(key)
    if not isinstance(value, dict):
        f.fail(key, f"must be an object with {names}")
    try:
        return tuple(float(value[n]) for n in names)
    except (KeyError, TypeError, ValueError):
        f.fail(key, f"must hold numeric {names}, got {value!r}")


def read_sqa3d(
    questions_path: str | os.PathLike,
    annotations_path: str | os.PathLike,
    scene_ids: Collection[str] | None = None,
) -> list[SQA3DRecord]:
    """Read SQA3D ``v1_balanced_questions_*`` joined with ``v1_balanced_sqa_annotations_*`` on question_id."""
    q_path, questions = _records(questions_path, "questions")
    a_path, annotations = _records(annotations_path, "annotations")
    by_id: dict[int, tuple[int, dict]] = {}
    for index, raw in enumerate(annotations):
        f = _Fields(a_path, index, raw, None)
        by_id[f.int("question_id")] = (index, raw)
    records = []
    for index, raw in enumerate(questions):
        f = _Fields(q_path, index, raw, scene_ids)
        qid = f.int("question_id")
        if qid not in by_id:
            f.fail("question_id", f"= {qid} has no entry in {a_path}")
        a_index, ann = by_id[qid]
        g = _Fields(a_path, a_index, ann, None)
        answers_raw = g.list("answers", dict)
        answers = []
        for j, ans in enumerate(answers_raw):
            if not isinstance(ans.get("answer"), str):
                g.fail(f"answers[{j}].answer", "missing or not a string")
            answers.append(ans["answer"])
        records.append(
            SQA3DRecord(
                scene_id=f.scene(),
                question_id=qid,
                situation=f.str("situation"),
                alternative_situations=f.list("alternative_situation", str, default=[]),
                question=f.str("question"),
                answers=answers,
                position=_float_triplet(g, "position", ("x", "y", "z")),
                rotation=_float_triplet(g, "rotation", ("_x", "_y", "_z", "_w")),
                question_type=str(ann.get("question_type", "")),
                answer_type=str(ann.get("answer_type", "")),
            )
        )
    return records


# --------------------------------------------------------------------------- Multi3DRefer
def read_multi3drefer(path: str | os.PathLike, scene_ids: Collection[str] | None = None) -> list[Multi3DReferRecord]:
    """Read ``multi3drefer_<split>.json``."""
    path, data = _records(path)
    records = []
    for index, raw in enumerate(data):
        f = _Fields(path, index, raw, scene_ids)
        eval_type = f.str("eval_type")
        if eval_type not in MULTI3DREFER_EVAL_TYPES:
            f.fail("eval_type", f"= {eval_type!r}; expected one of {list(MULTI3DREFER_EVAL_TYPES)}")
        object_ids = f.list("object_ids", int)
        records.append(
            Multi3DReferRecord(
                f.scene(), f.str("object_name"), object_ids, f.int("ann_id"), f.str("description"), eval_type
            )
        )
    return records


# --------------------------------------------------------------------------- Nr3D / Sr3D
_REFERIT_REQUIRED = ("scan_id", "target_id", "utterance", "stimulus_id", "instance_type")


def read_referit3d_csv(path: str | os.PathLike, scene_ids: Collection[str] | None = None) -> list[ReferIt3DRecord]:
    """Read a Nr3D / Sr3D CSV (columns ``scan_id, target_id, utterance, stimulus_id, instance_type``,
    optional ``tokens`` as a Python/JSON list literal; the rest kept in ``extra``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    records = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _REFERIT_REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: CSV lacks column(s) {missing}; header is {reader.fieldnames}")
        for index, row in enumerate(reader):
            f = _Fields(path, index, row, scene_ids)
            tokens: list[str] = []
            if row.get("tokens"):
                try:
                    parsed = ast.literal_eval(row["tokens"])
                except (ValueError, SyntaxError):
                    f.fail("tokens", f"is not a list literal: {row['tokens'][:60]!r}")
                if not isinstance(parsed, list):
                    f.fail("tokens", "is not a list")
                tokens = [str(t) for t in parsed]
            extra = {k: v for k, v in row.items() if k not in _REFERIT_REQUIRED and k != "tokens" and k is not None}
            records.append(
                ReferIt3DRecord(
                    f.scene("scan_id"),
                    f.int("target_id"),
                    f.str("utterance"),
                    f.str("stimulus_id"),
                    f.str("instance_type"),
                    tokens,
                    extra,
                )
            )
    return records
