"""Annotation files with bad content: records naming unknown scenes or
objects, malformed JSON, and scene ids that try to be paths out of the data root."""

from __future__ import annotations

import json

import pytest

from vidllm.config import DataConfig
from vidllm.data.annotations import read_multi3drefer, read_referit3d_csv, read_scanqa, read_scanrefer, read_sqa3d
from vidllm.data.dataset import VidLLMDataset
from vidllm.errors import DataError


def _cfg(root, **kw):
    base = dict(
        root=str(root),
        num_frames=2,
        image_size=56,
        batch_size=1,
        num_workers=0,
        tasks=["grounding"],
        task_weights=[1.0],
    )
    return DataConfig(**{**base, **kw})


def _edit(synthetic_root, tmp_path, name, edit):
    """Copy annotation ``name`` of the synthetic set into tmp_path with ``edit(records)`` applied."""
    data = json.loads((synthetic_root / "annotations" / name).read_text())
    edit(data)
    (tmp_path / name).write_text(json.dumps(data))
    return tmp_path / name


# ----------------------------------------------------------------------------- unknown scenes
@pytest.mark.parametrize(
    "name, key, dir_key, extra",
    [
        ("ScanQA_v1.0_train.json", "qa", "scanqa_dir", {}),
        ("multi3drefer_train.json", "grounding", "multi3drefer_dir", {"grounding_source": "multi3drefer"}),
        ("ScanRefer_filtered_train.json", "caption", "scanrefer_dir", {}),
    ],
)
def test_unknown_scene_is_refused_naming_file_record_and_field(synthetic_root, tmp_path, name, key, dir_key, extra):
    _edit(synthetic_root, tmp_path, name, lambda recs: recs[2].update(scene_id="scene0999_00"))
    cfg = _cfg(synthetic_root, tasks=[key], **{dir_key: str(tmp_path)}, **extra)
    with pytest.raises(DataError, match=rf"{name}: record 2: field 'scene_id' = 'scene0999_00' names an unknown scene"):
        VidLLMDataset(cfg, "train")


def test_sqa3d_question_of_an_unknown_scene(synthetic_root, tmp_path):
    name = "v1_balanced_questions_train_scannetv2.json"
    _edit(synthetic_root, tmp_path, name, lambda d: d["questions"][1].update(scene_id="scene0999_00"))
    ann = "v1_balanced_sqa_annotations_train_scannetv2.json"
    (tmp_path / ann).write_text((synthetic_root / "annotations" / ann).read_text())
    with pytest.raises(DataError, match=rf"{name}: record 1: field 'scene_id' = 'scene0999_00' names an unknown scene"):
        VidLLMDataset(_cfg(synthetic_root, tasks=["sqa"], sqa3d_dir=str(tmp_path)), "train")


# ----------------------------------------------------------------------------- unknown objects
def test_grounding_record_naming_an_unknown_object(synthetic_root, tmp_path):
    _edit(synthetic_root, tmp_path, "ScanRefer_filtered_train.json", lambda recs: recs[0].update(object_id="999"))
    ds = VidLLMDataset(_cfg(synthetic_root, scanrefer_dir=str(tmp_path)), "train")
    assert ds.samples[0][1].object_id == 999
    with pytest.raises(
        DataError, match=r"record scene0000_00\|999\|0: field 'object_id' = 999 is not a GT object of the scene"
    ):
        ds[0]
    ds[1]  # the other records still load


def test_multi3drefer_record_naming_an_unknown_object(synthetic_root, tmp_path):
    def edit(recs):
        first = next(r for r in recs if r["object_ids"])
        first["object_ids"] = first["object_ids"] + [4242]

    _edit(synthetic_root, tmp_path, "multi3drefer_train.json", edit)
    ds = VidLLMDataset(_cfg(synthetic_root, grounding_source="multi3drefer", multi3drefer_dir=str(tmp_path)), "train")
    index = next(i for i, (_, r) in enumerate(ds.samples) if 4242 in r.object_ids)
    with pytest.raises(DataError, match="field 'object_id' = 4242 is not a GT object"):
        ds[index]


def test_qa_object_ids_that_are_unknown_are_dropped_from_the_targets(synthetic_root, tmp_path):
    _edit(
        synthetic_root,
        tmp_path,
        "ScanQA_v1.0_train.json",
        lambda recs: recs[0].update(object_ids=[recs[0]["object_ids"][0], 4242]),
    )
    ds = VidLLMDataset(_cfg(synthetic_root, tasks=["qa"], scanqa_dir=str(tmp_path)), "train")
    item = ds[0]
    assert (
        4242 not in item["target_ids"].tolist() and len(item["target_ids"]) == 1
    )  # auxiliary targets: the known one stays


# ----------------------------------------------------------------------------- malformed JSON
@pytest.mark.parametrize(
    "name, task, dir_key",
    [
        ("ScanQA_v1.0_train.json", "qa", "scanqa_dir"),
        ("ScanRefer_filtered_train.json", "grounding", "scanrefer_dir"),
        ("multi3drefer_train.json", "grounding", "multi3drefer_dir"),
    ],
)
@pytest.mark.parametrize(
    "text, what",
    [
        ('[{"scene_id": "scene0000_00",\n  oops}]', "line 2"),
        ("", "line 1"),
        ('{"a": 1}', "expected a list of records, got dict"),
    ],
)
def test_malformed_json_names_the_file(synthetic_root, tmp_path, name, task, dir_key, text, what):
    (tmp_path / name).write_text(text)
    extra = {"grounding_source": "multi3drefer"} if name.startswith("multi3d") else {}
    with pytest.raises(DataError, match=rf"{name}: .*{what}") as err:
        VidLLMDataset(_cfg(synthetic_root, tasks=[task], **{dir_key: str(tmp_path)}, **extra), "train")
    assert "\n" not in str(err.value)


def test_sqa3d_malformed_json_names_the_file(tmp_path):
    (tmp_path / "q.json").write_text('{"questions": [')
    (tmp_path / "a.json").write_text('{"annotations": []}')
    with pytest.raises(DataError, match=r"q\.json: not valid JSON"):
        read_sqa3d(tmp_path / "q.json", tmp_path / "a.json")
    (tmp_path / "q.json").write_text('{"questions": []}')
    (tmp_path / "a.json").write_text('{"annotations": [}')
    with pytest.raises(DataError, match=r"a\.json: not valid JSON"):
        read_sqa3d(tmp_path / "q.json", tmp_path / "a.json")


# ----------------------------------------------------------------------------- scene ids are never paths
TRAVERSAL = [
    "../scene0000_00",
    "scene0000_00/../../etc",
    "/etc/passwd",
    "scene0000_00/color",
    "..",
    "scene0000_00\\..\\x",
]


@pytest.mark.parametrize("scene_id", TRAVERSAL)
def test_scene_ids_that_are_paths_are_refused_by_every_reader(tmp_path, scene_id):
    match = r"record 0: field '(scene_id|scan_id)' = .* is not a ScanNet scene id"
    rec = {"scene_id": scene_id, "object_id": "1", "object_name": "chair", "ann_id": "0", "description": "x"}
    (tmp_path / "refer.json").write_text(json.dumps([rec]))
    with pytest.raises(DataError, match=match):
        read_scanrefer(tmp_path / "refer.json")
    (tmp_path / "qa.json").write_text(json.dumps([{"scene_id": scene_id, "question_id": "q", "question": "?"}]))
    with pytest.raises(DataError, match=match):
        read_scanqa(tmp_path / "qa.json")
    m3d = {
        "scene_id": scene_id,
        "object_name": "chair",
        "object_ids": [],
        "ann_id": 0,
        "description": "x",
        "eval_type": "zt_w_d",
    }
    (tmp_path / "m3d.json").write_text(json.dumps([m3d]))
    with pytest.raises(DataError, match=match):
        read_multi3drefer(tmp_path / "m3d.json")
    (tmp_path / "q.json").write_text(
        json.dumps({"questions": [{"scene_id": scene_id, "situation": "s", "question": "?", "question_id": 1}]})
    )
    ann = {
        "question_id": 1,
        "answers": [{"answer": "a"}],
        "position": {"x": 0, "y": 0, "z": 0},
        "rotation": {"_x": 0, "_y": 0, "_z": 0, "_w": 1},
    }
    (tmp_path / "a.json").write_text(json.dumps({"annotations": [ann]}))
    with pytest.raises(DataError, match=match):
        read_sqa3d(tmp_path / "q.json", tmp_path / "a.json")
    (tmp_path / "nr3d.csv").write_text(
        f'scan_id,target_id,utterance,stimulus_id,instance_type\n"{scene_id}",1,the chair,s,chair\n'
    )
    with pytest.raises(DataError, match=match):
        read_referit3d_csv(tmp_path / "nr3d.csv")
