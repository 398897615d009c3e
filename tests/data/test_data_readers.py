"""Readers of the real formats against hand-written snippets and the real SQA3D test split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidllm.data import (
    load_scannet_scene,
    read_label_map,
    read_multi3drefer,
    read_referit3d_csv,
    read_scanqa,
    read_scanrefer,
    read_sqa3d,
    scan2cap_references,
)
from vidllm.data.labels import default_label_map_path
from vidllm.errors import DataError

# ----------------------------------------------------------------------------- a hand-made scene
PLY = """ply
format ascii 1.0
element vertex 7
property float x
property float y
property float z
property uchar red
property uchar green
property uchar blue
property uchar alpha
element face 2
property list uchar int vertex_indices
end_header
0 0 0 255 0 0 255
1 0 0 255 0 0 255
0 2 1 255 0 0 255
3 3 0 0 255 0 255
4 5 2 0 255 0 255
10 10 10 9 9 9 255
11 11 11 9 9 9 255
3 0 1 2
3 3 4 5
"""


def write_scene(root, scene_id="scene0042_00", pose_names=("0", "1", "2", "10")):
    scene = root / scene_id
    for sub in ("color", "depth", "pose", "intrinsic"):
        (scene / sub).mkdir(parents=True)
    # axisAlignment: rotate 90° about z, then translate (1, 2, 3)
    (scene / f"{scene_id}.txt").write_text("axisAlignment = 0 -1 0 1 1 0 0 2 0 0 1 3 0 0 0 1\nsceneType = Office\n")
    (scene / f"{scene_id}_vh_clean_2.ply").write_text(PLY)
    (scene / f"{scene_id}_vh_clean_2.0.010000.segs.json").write_text(
        json.dumps({"segIndices": [5, 5, 9, 12, 12, 30, 30]})
    )
    groups = [
        {"id": 0, "objectId": 0, "label": "chair", "segments": [5, 9]},
        {"id": 1, "objectId": 1, "label": "table", "segments": [12]},
        {"id": 2, "objectId": 2, "label": "wall", "segments": [30]},
    ]
    (scene / f"{scene_id}.aggregation.json").write_text(json.dumps({"sceneId": scene_id, "segGroups": groups}))
    for name in pose_names:
        body = "-inf -inf -inf -inf\n" * 4 if name == "1" else "1 0 0 0.5\n0 1 0 0\n0 0 1 0\n0 0 0 1\n"
        (scene / "pose" / f"{name}.txt").write_text(body)
    for kind in ("color", "depth"):
        (scene / "intrinsic" / f"intrinsic_{kind}.txt").write_text("500 0 320 0\n0 500 240 0\n0 0 1 0\n0 0 0 1\n")
    return scene


def test_hand_written_scene_boxes_labels_and_poses(tmp_path):
    scene = load_scannet_scene(write_scene(tmp_path))
    assert scene.scene_id == "scene0042_00"
    assert scene.frame_ids.tolist() == [0, 1, 2, 10]  # numeric, not lexicographic, order
    assert scene.valid.tolist() == [True, False, True, True]
    assert np.isneginf(scene.poses_c2w[1]).all()
    np.testing.assert_allclose(scene.axis_alignment[:3, 3], [1, 2, 3])
    # wall dropped; boxes = AABB of aligned vertices, computed by hand
    assert scene.objects.object_ids.tolist() == [0, 1]
    assert scene.objects.raw_labels == ["chair", "table"]
    assert scene.objects.nyu40.tolist() == [5, 7]
    np.testing.assert_allclose(scene.objects.boxes, [[0, 2.5, 3.5, 2, 1, 1], [-3, 5.5, 4, 2, 1, 2]], atol=1e-6)
    np.testing.assert_allclose(scene.intrinsic_color, [[500, 0, 320], [0, 500, 240], [0, 0, 1]])
    np.testing.assert_allclose(scene.aligned_c2w[0, :3, 3], [1, 2.5, 3])


def test_meta_without_alignment_is_identity(tmp_path):
    scene_dir = write_scene(tmp_path)
    (scene_dir / "scene0042_00.txt").write_text("sceneType = Office\n")
    scene = load_scannet_scene(scene_dir, with_objects=False)
    np.testing.assert_array_equal(scene.axis_alignment, np.eye(4))


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: (d / "scene0042_00.txt").write_text("axisAlignment = 1 2 3\n"), "axisAlignment"),
        (lambda d: (d / "pose" / "2.txt").write_text("1 0 0\n"), r"pose/2.txt.*16 numbers"),
        (
            lambda d: (d / "scene0042_00_vh_clean_2.0.010000.segs.json").write_text('{"segIndices": [1, 2]}'),
            "2 segIndices for a mesh of 7",
        ),
        (
            lambda d: (d / "scene0042_00.aggregation.json").write_text(
                '{"segGroups": [{"objectId": 0, "label": "chair"}]}'
            ),
            r"segGroups\[0\]: field 'segments' missing",
        ),
        (lambda d: (d / "scene0042_00.aggregation.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "intrinsic" / "intrinsic_depth.txt").unlink(), "intrinsic_depth.txt: intrinsic file not found"),
    ],
)
def test_malformed_scene_files_name_file_and_field(tmp_path, mutate, match):
    scene_dir = write_scene(tmp_path)
    mutate(scene_dir)
    with pytest.raises(DataError, match=match):
        load_scannet_scene(scene_dir)


def test_missing_scene_folder(tmp_path):
    with pytest.raises(DataError, match="scene0001_00: ScanNet scene folder not found"):
        load_scannet_scene(tmp_path / "scene0001_00")


# ----------------------------------------------------------------------------- labels
def test_packaged_label_slice_matches_real_tsv(real_label_map):
    packaged = read_label_map(default_label_map_path())
    assert len(packaged.nyu40id) >= 20
    for raw, nyu in packaged.nyu40id.items():
        assert real_label_map.nyu40id[raw] == nyu
        assert real_label_map.nyu40class[raw] == packaged.nyu40class[raw]
    assert real_label_map.scanrefer_class("office_chair") == "chair"
    assert real_label_map.scanrefer_class("kitchen_counter") == "counter"
    assert real_label_map.scanrefer_class("trash_can") == "others"
    assert real_label_map.scanrefer_class("no such thing") == "others"
    assert {real_label_map.id_of(c) for c in ("wall", "floor", "ceiling")} == {1, 2, 22}


# ----------------------------------------------------------------------------- ScanRefer / Scan2Cap
def _sr(scene, oid, name, ann, text="a thing."):
    return {
        "scene_id": scene,
        "object_id": str(oid),
        "object_name": name,
        "ann_id": str(ann),
        "description": text,
        "token": text.split(),
    }


def test_scanrefer_unique_multiple_and_scan2cap(tmp_path, real_label_map):
    records = [
        _sr("scene0000_00", 1, "chair", 0),
        _sr("scene0000_00", 1, "chair", 1, "the other text."),
        _sr("scene0000_00", 2, "office_chair", 0),
        _sr("scene0000_00", 3, "table", 0),
        _sr("scene0000_00", 4, "trash_can", 0),
        _sr("scene0000_00", 5, "lamp", 0),
        _sr("scene0001_00", 7, "chair", 0),
    ]
    path = tmp_path / "ScanRefer_filtered_val.json"
    path.write_text(json.dumps(records))
    out = read_scanrefer(path, label_map=real_label_map)
    assert [r.eval_type for r in out] == [
        "multiple",
        "multiple",
        "multiple",
        "unique",
        "multiple",
        "multiple",
        "unique",
    ]
    assert out[0].object_id == 1 and out[0].ann_id == 0 and out[0].tokens == ["a", "thing."]
    refs = scan2cap_references(out)
    assert refs[("scene0000_00", 1)] == ["a thing.", "the other text."]
    assert len(refs) == 6


@pytest.mark.parametrize(
    "record, match",
    [
        (
            {"scene_id": "scene0000_00", "object_id": "1", "object_name": "chair", "ann_id": "0"},
            r"record 1: field 'description' missing",
        ),
        (
            {"scene_id": "scene0000_00", "object_id": "x", "object_name": "chair", "ann_id": "0", "description": "d"},
            r"record 1: field 'object_id' must be an integer",
        ),
        (
            {"scene_id": "scene9999_00", "object_id": "1", "object_name": "chair", "ann_id": "0", "description": "d"},
            r"record 1: field 'scene_id' = 'scene9999_00' names an unknown scene",
        ),
        (
            {"scene_id": "kitchen", "object_id": "1", "object_name": "chair", "ann_id": "0", "description": "d"},
            r"record 1: field 'scene_id' = 'kitchen' is not a ScanNet scene id",
        ),
    ],
)
def test_scanrefer_malformed_records(tmp_path, record, match):
    path = tmp_path / "ScanRefer_filtered_train.json"
    path.write_text(json.dumps([_sr("scene0000_00", 1, "chair", 0), record]))
    with pytest.raises(DataError, match=match) as info:
        read_scanrefer(path, scene_ids={"scene0000_00"})
    assert "ScanRefer_filtered_train.json" in str(info.value)


# ----------------------------------------------------------------------------- ScanQA / Multi3DRefer / ReferIt3D
def test_scanqa_with_and_without_answers(tmp_path):
    rows = [
        {
            "scene_id": "scene0000_00",
            "question_id": "train-scene0000-0",
            "question": "what is on the table?",
            "answers": ["a cup"],
            "object_ids": [3],
            "object_names": ["cup"],
        },
        {
            "scene_id": "scene0000_00",
            "question_id": "test-scene0000-1",
            "question": "where is it?",
            "object_ids": [],
            "object_names": [],
        },
    ]
    path = tmp_path / "ScanQA_v1.0_val.json"
    path.write_text(json.dumps(rows))
    out = read_scanqa(path)
    assert out[0].answers == ["a cup"] and out[0].object_ids == [3]
    assert out[1].answers == []
    rows[1]["object_ids"] = "3"
    path.write_text(json.dumps(rows))
    with pytest.raises(DataError, match=r"record 1: field 'object_ids' must be a list"):
        read_scanqa(path)


def test_multi3drefer(tmp_path):
    rows = [
        {
            "scene_id": "scene0000_00",
            "object_name": "chair",
            "object_ids": [1, 2],
            "ann_id": 0,
            "description": "all chairs",
            "eval_type": "mt",
        },
        {
            "scene_id": "scene0000_00",
            "object_name": "bed",
            "object_ids": [],
            "ann_id": 1,
            "description": "the bed",
            "eval_type": "zt_wo_d",
        },
    ]
    path = tmp_path / "multi3drefer_val.json"
    path.write_text(json.dumps(rows))
    out = read_multi3drefer(path)
    assert out[0].object_ids == [1, 2] and out[1].object_ids == [] and out[1].eval_type == "zt_wo_d"
    rows[1]["eval_type"] = "zero"
    path.write_text(json.dumps(rows))
    with pytest.raises(DataError, match=r"record 1: field 'eval_type' = 'zero'"):
        read_multi3drefer(path)


def test_referit3d_csv(tmp_path):
    path = tmp_path / "nr3d.csv"
    path.write_text(
        "assignmentid,stimulus_id,utterance,correct_guess,scan_id,target_id,instance_type,tokens\n"
        "a1,scene0525_00-plant-5-44-47,\"the plant, by the door\",True,scene0525_00,44,plant,\"['the', 'plant', ',', 'by']\"\n"
    )
    (rec,) = read_referit3d_csv(path)
    assert (rec.scene_id, rec.target_id, rec.instance_type) == ("scene0525_00", 44, "plant")
    assert rec.utterance == "the plant, by the door" and rec.tokens == ["the", "plant", ",", "by"]
    assert rec.extra["correct_guess"] == "True"
    path.write_text("scan_id,utterance\nscene0000_00,x\n")
    with pytest.raises(DataError, match="lacks column"):
        read_referit3d_csv(path)


# ----------------------------------------------------------------------------- SQA3D (real test split)
def test_sqa3d_real_test_split(shared_data):
    base = shared_data / "sqa3d"
    records = read_sqa3d(
        base / "v1_balanced_questions_test_scannetv2.json", base / "v1_balanced_sqa_annotations_test_scannetv2.json"
    )
    assert len(records) == 3519
    assert len({r.scene_id for r in records}) == 67
    first = next(r for r in records if r.question_id == 220602000002)
    assert first.scene_id == "scene0050_00" and first.answers == ["piano"]
    assert first.question.startswith("What instrument") and first.situation.startswith("I am standing by the ottoman")
    assert len(first.alternative_situations) == 2
    np.testing.assert_allclose(first.rotation, (0, 0, -0.9995736030415032, -0.02919952230128897))
    assert all(r.answers for r in records)


def test_sqa3d_missing_annotation(tmp_path):
    q = tmp_path / "q.json"
    a = tmp_path / "a.json"
    q.write_text(
        json.dumps({"questions": [{"scene_id": "scene0000_00", "situation": "s", "question": "q", "question_id": 5}]})
    )
    a.write_text(
        json.dumps(
            {
                "annotations": [
                    {
                        "question_id": 6,
                        "answers": [{"answer": "x"}],
                        "position": {"x": 0, "y": 0, "z": 0},
                        "rotation": {"_x": 0, "_y": 0, "_z": 0, "_w": 1},
                    }
                ]
            }
        )
    )
    with pytest.raises(DataError, match=r"q.json: record 0: field 'question_id' = 5 has no entry"):
        read_sqa3d(q, a)


# ----------------------------------------------------------------------------- ScanNet split lists (real)
def test_scannet_split_lists_real(shared_data):
    import json

    from vidllm.config import DataConfig
    from vidllm.data.dataset import split_scene_ids

    cfg = DataConfig(split_dir=str(shared_data))
    splits = {name: split_scene_ids(cfg, name) for name in ("train", "val", "test")}
    assert {k: len(v) for k, v in splits.items()} == {"train": 1201, "val": 312, "test": 100}
    assert all(len(set(v)) == len(v) for v in splits.values())
    assert not set(splits["train"]) & set(splits["val"]) and not set(splits["test"]) & (
        set(splits["train"]) | set(splits["val"])
    )
    assert splits["val"][0] == "scene0011_00" and all(
        s.startswith("scene") and s[-3] == "_" for v in splits.values() for s in v
    )
    questions = json.loads((shared_data / "sqa3d" / "v1_balanced_questions_test_scannetv2.json").read_text())[
        "questions"
    ]
    assert {q["scene_id"] for q in questions} <= set(splits["val"])  # SQA3D's test scenes are ScanNet val scenes
