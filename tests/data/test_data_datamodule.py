"""Dataset + DataModule: batches of every task with the documented shapes (``images [B, S, 3, H, W]``,
``depth [B, S, H, W]``, ``extrinsics [B, S, 3, 4]``, ``intrinsics [B, S, 3, 3]``, boxes ``[B, N, 6]``), padding,
task mixing, sources."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vidllm.config import DataConfig
from vidllm.data.datamodule import VidLLMDataModule, collate_clips, ensure_synthetic
from vidllm.data.dataset import VidLLMDataset
from vidllm.errors import DataError

S, H, W = 4, 56, 70  # 84×112 frames, shorter side → 56: 56×75 → crop 56×70


def _cfg(root, **kw):
    base = dict(
        root=str(root),
        num_frames=S,
        image_size=56,
        batch_size=2,
        num_workers=0,
        tasks=["recon", "qa", "sqa", "grounding", "caption"],
        task_weights=[1, 1, 1, 1, 1],
    )
    base.update(kw)
    return DataConfig(**base)


def _check_common(batch, b):
    assert batch["images"].shape == (b, S, 3, H, W) and batch["images"].dtype == torch.float32
    assert batch["depth"].shape == (b, S, H, W)
    assert batch["extrinsics"].shape == (b, S, 3, 4) and batch["intrinsics"].shape == (b, S, 3, 3)
    assert batch["world_from_model"].shape == (b, 4, 4) and batch["frame_ids"].shape == (b, S)
    n = batch["gt_boxes"].shape[1]
    assert batch["gt_boxes"].shape == (b, n, 6) and batch["gt_boxes_mask"].shape == (b, n)
    assert batch["gt_box_ids"].shape == (b, n) and batch["gt_labels"].shape == (b, n)
    torch.testing.assert_close(batch["extrinsics"][:, 0], torch.eye(4)[:3].expand(b, 3, 4), atol=1e-5, rtol=0)
    for key in (
        "task",
        "scene_id",
        "question",
        "situation",
        "description",
        "answer",
        "answers",
        "record_id",
        "eval_type",
    ):
        assert isinstance(batch[key], list) and len(batch[key]) == b


@pytest.mark.parametrize("task", ["recon", "qa", "sqa", "grounding", "caption"])
def test_batches_of_each_task(synthetic_root, task):
    ds = VidLLMDataset(_cfg(synthetic_root, tasks=[task], task_weights=[1.0]), "train")
    assert len(ds) > 0 and set(ds.task_counts()) == {task}
    batch = collate_clips([ds[0], ds[len(ds) - 1]])
    _check_common(batch, 2)
    assert batch["task"] == [task, task]
    t = batch["target_boxes"].shape[1]
    assert (
        batch["target_boxes_model"].shape == (2, t, 6)
        and batch["target_mask"].shape == (2, t)
        and batch["target_ids"].shape == (2, t)
    )
    if task == "recon":
        assert t == 0 and batch["question"] == ["", ""]
    if task in ("qa", "sqa"):
        assert all(batch["question"]) and all(batch["answer"])
    if task == "sqa":
        assert all(batch["situation"])
    if task == "grounding":
        assert all(batch["description"]) and set(batch["eval_type"]) <= {"unique", "multiple"}
        assert batch["target_mask"].all()
    if task == "caption":
        assert all(batch["answers"]) and batch["target_mask"].all()
    if task in ("grounding", "caption"):
        for b in range(2):  # target = the GT box of its object id; the model-frame box = inv(world_from_model) applied
            row = (batch["gt_box_ids"][b] == batch["target_ids"][b, 0]).nonzero()[0, 0]
            torch.testing.assert_close(batch["target_boxes"][b, 0], batch["gt_boxes"][b, row])
            box = batch["target_boxes"][b, 0].double().numpy()
            corners = box[:3] + 0.5 * box[3:] * np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
            wfm = batch["world_from_model"][b].double().numpy()
            model = (corners - wfm[:3, 3]) @ wfm[:3, :3]
            expect = np.r_[(model.min(0) + model.max(0)) / 2, model.max(0) - model.min(0)]
            np.testing.assert_allclose(batch["target_boxes_model"][b, 0].numpy(), expect, atol=1e-4)


def test_collate_pads_variable_object_and_target_counts(synthetic_root):
    ds = VidLLMDataset(_cfg(synthetic_root, tasks=["qa"], task_weights=[1.0]), "train")
    counts = [len(ds.samples[i][1].object_ids) for i in range(len(ds))]
    many = int(np.argmax(counts))
    single = counts.index(1)
    other_scene = next(i for i in range(len(ds)) if ds.samples[i][1].scene_id != ds.samples[many][1].scene_id)
    items = [ds[many], ds[single], ds[other_scene]]
    batch = collate_clips(items)
    assert batch["target_mask"].sum(1).tolist() == [counts[many], 1, counts[other_scene]]
    assert (batch["target_ids"][~batch["target_mask"]] == -1).all()
    assert batch["gt_boxes_mask"].sum(1).tolist() == [len(it["gt_boxes"]) for it in items]
    assert (batch["gt_box_ids"][~batch["gt_boxes_mask"]] == -1).all()


def test_datamodule_task_mixing_and_workers(synthetic_root):
    cfg = _cfg(synthetic_root, tasks=["recon", "grounding"], task_weights=[3.0, 1.0], num_workers=1)
    dm = VidLLMDataModule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    weights = dm.task_sample_weights(dm.train_set)
    counts = dm.train_set.task_counts()
    by_task = {t: float(sum(w for w, (task, _) in zip(weights, dm.train_set.samples) if task == t)) for t in counts}
    assert by_task["recon"] == pytest.approx(3.0) and by_task["grounding"] == pytest.approx(1.0)
    batch = next(iter(dm.val_dataloader()))  # one worker process: the dataset pickles and reloads scenes
    _check_common(batch, 2)
    assert len(list(dm.train_dataloader().sampler)) == len(dm.train_set)


def test_coverage_and_stride_sampling_in_dataset(synthetic_root):
    for sampling in ("coverage", "stride"):
        ds = VidLLMDataset(
            _cfg(synthetic_root, tasks=["recon"], task_weights=[1.0], frame_sampling=sampling, frame_stride=2), "train"
        )
        item = ds[0]
        ids = item["frame_ids"].tolist()
        assert len(ids) == S and ids == sorted(ids)
        scene = ds.scene(item["scene_id"])
        assert scene.valid[np.searchsorted(scene.frame_ids, ids)].all()


def test_scannet_source_reads_real_format_folders(synthetic_root):
    dm = VidLLMDataModule(_cfg(synthetic_root, source="scannet", tasks=["grounding"], task_weights=[1.0]))
    dm.prepare_data()
    dm.setup("validate")
    _check_common(next(iter(dm.val_dataloader())), 1 if len(dm.val_set) == 1 else 2)
    with pytest.raises(DataError, match="ScanNet scene folders not found"):
        VidLLMDataModule(_cfg(synthetic_root / "nowhere", source="scannet")).prepare_data()


def test_unknown_scene_in_scanrefer_record(synthetic_root, tmp_path):
    records = json.loads((synthetic_root / "annotations" / "ScanRefer_filtered_train.json").read_text())
    records[3]["scene_id"] = "scene0777_00"
    (tmp_path / "ScanRefer_filtered_train.json").write_text(json.dumps(records))
    with pytest.raises(
        DataError,
        match=r"ScanRefer_filtered_train.json: record 3: field 'scene_id' = 'scene0777_00' names an unknown scene",
    ):
        VidLLMDataset(
            _cfg(synthetic_root, scanrefer_dir=str(tmp_path), tasks=["grounding"], task_weights=[1.0]), "train"
        )


def test_synthetic_default_is_generated_into_empty_root(tmp_path):
    root = tmp_path / "gen"
    cfg = _cfg(
        root,
        synthetic_scenes=2,
        synthetic_frames=3,
        synthetic_width=56,
        synthetic_height=42,
        num_frames=2,
        image_size=28,
        tasks=["qa"],
        task_weights=[1.0],
    )
    dm = VidLLMDataModule(cfg)
    dm.prepare_data()
    assert sorted(p.name for p in (root / "scans").iterdir()) == ["scene0000_00", "scene0001_00"]
    assert [p.name for p in tmp_path.iterdir()] == ["gen"]  # no temporary folder left behind
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["images"].shape == (2, 2, 3, 28, 28)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(DataError, match="not empty but holds no scenes"):
        ensure_synthetic(_cfg(tmp_path / "junk"))


def test_missing_split_list(synthetic_root, tmp_path):
    with pytest.raises(DataError, match="no split list 'test.txt'"):
        VidLLMDataset(_cfg(synthetic_root), "test")


def test_multi3drefer_grounding_with_zero_and_many_targets(synthetic_root, tmp_path):
    # the tiny scenes show few objects (only visible ones are asked about): add a many-target record of two GT objects
    records = json.loads((synthetic_root / "annotations" / "multi3drefer_train.json").read_text())
    gt = json.loads((synthetic_root / "synthetic_gt" / "scene0000_00.json").read_text())
    records.append(
        {
            "scene_id": "scene0000_00",
            "object_name": "thing",
            "object_ids": [o["object_id"] for o in gt["objects"][:2]],
            "ann_id": 999,
            "description": "the two things.",
            "eval_type": "mt",
        }
    )
    (tmp_path / "multi3drefer_train.json").write_text(json.dumps(records))
    ds = VidLLMDataset(
        _cfg(
            synthetic_root,
            tasks=["grounding"],
            task_weights=[1.0],
            grounding_source="multi3drefer",
            multi3drefer_dir=str(tmp_path),
        ),
        "train",
    )
    kinds = [rec.eval_type for _, rec in ds.samples]
    zero, many = kinds.index("zt_wo_d" if "zt_w_d" not in kinds else "zt_w_d"), kinds.index("mt")
    batch = collate_clips([ds[zero], ds[many]])
    assert batch["eval_type"] == [kinds[zero], "mt"]
    assert batch["target_mask"].sum(1).tolist() == [0, 2]
    both = VidLLMDataset(
        _cfg(
            synthetic_root,
            tasks=["grounding"],
            task_weights=[1.0],
            grounding_source="both",
            multi3drefer_dir=str(tmp_path),
        ),
        "train",
    )
    assert len(both) == len(ds) + len(
        VidLLMDataset(_cfg(synthetic_root, tasks=["grounding"], task_weights=[1.0]), "train")
    )


def test_split_naming_a_missing_scene_folder(synthetic_root, tmp_path):
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "scannetv2_train.txt").write_text("scene0000_00\nscene0099_00\n")
    with pytest.raises(DataError, match=r"1 scene folder\(s\) of split 'train' not found, e.g. \['scene0099_00'\]"):
        VidLLMDataset(_cfg(synthetic_root, split_dir=str(splits)), "train")


def test_draws_of_one_sample_differ_but_each_key_is_one_item(synthetic_root):
    from vidllm.data.resumable import draw_key

    cfg = _cfg(
        synthetic_root,
        tasks=["recon", "qa"],
        task_weights=[1.0, 1.0],
        frame_sampling="segment",
        answer_sampling="random",
    )
    train = VidLLMDataset(cfg, "train", deterministic=False)
    n = len(train)
    clips = {tuple(train[draw_key(0, d, n)]["frame_ids"].tolist()) for d in range(1, 13)}
    assert len(clips) > 1  # segment sampling: another clip per draw
    assert train[draw_key(0, 3, n)]["frame_ids"].tolist() == train[draw_key(0, 3, n)]["frame_ids"].tolist()
    val = VidLLMDataset(cfg, "train", deterministic=True)  # evaluation: the segment middles, whatever the key
    assert val[draw_key(0, 3, n)]["frame_ids"].tolist() == val[0]["frame_ids"].tolist()
    # answer sampling: a question with several references gets each of them over the draws, the first in evaluation
    multi = next(i for i, (t, r) in enumerate(train.samples) if t == "qa" and len(set(r.answers)) > 1)
    refs = train.samples[multi][1].answers
    drawn = {train[draw_key(multi, d, n)]["answer"] for d in range(1, 40)}
    assert drawn == set(refs)
    assert val[draw_key(multi, 5, n)]["answer"] == refs[0]
    first = VidLLMDataset(
        _cfg(synthetic_root, tasks=["recon", "qa"], task_weights=[1.0, 1.0]), "train", deterministic=False
    )
    assert {first[draw_key(multi, d, n)]["answer"] for d in range(1, 10)} == {refs[0]}  # answer_sampling 'first'


def test_reversed_training_draws(synthetic_root):
    """data.reverse_prob: a reversed draw is the same frames backwards; its extrinsics are the GT poses relative
    to the new first frame, and its target boxes map to the same world boxes."""
    from recon.geometry import transform_boxes
    from vidllm.data.resumable import draw_key

    with pytest.raises(ValueError, match="reverse_prob"):
        _cfg(synthetic_root, reverse_prob=1.5)
    cfg = _cfg(synthetic_root, tasks=["grounding"], task_weights=[1.0], reverse_prob=1.0)
    forward = VidLLMDataset(cfg, "train", deterministic=True)  # evaluation: never reversed
    backward = VidLLMDataset(cfg, "train", deterministic=False)
    n = len(backward)
    fwd, rev = forward[0], backward[draw_key(0, 2, n)]
    assert rev["frame_ids"].tolist() == fwd["frame_ids"].flip(0).tolist()
    torch.testing.assert_close(rev["images"], fwd["images"].flip(0))
    scene = backward.scene(rev["scene_id"])
    row = {int(f): i for i, f in enumerate(scene.frame_ids)}
    c2w = np.stack([scene.aligned_c2w[row[int(f)]] for f in rev["frame_ids"]])  # GT camera→world of the reversed order
    expected = np.stack([np.linalg.inv(c) @ c2w[0] for c in c2w])[:, :3]  # world(model = new first camera)→camera
    np.testing.assert_allclose(rev["extrinsics"].double().numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(rev["world_from_model"].double().numpy(), c2w[0], atol=1e-5)
    torch.testing.assert_close(rev["target_boxes"], fwd["target_boxes"])
    # box centres map back to the world boxes' centres (sizes are the AABB of the rotated box in the model frame)
    wfm = rev["world_from_model"].double()
    centres = rev["target_boxes_model"][:, :3].double() @ wfm[:3, :3].T + wfm[:3, 3]
    torch.testing.assert_close(centres.float(), rev["target_boxes"][:, :3], atol=1e-4, rtol=0)
    model_from_world = torch.from_numpy(np.linalg.inv(c2w[0]))
    torch.testing.assert_close(
        transform_boxes(rev["target_boxes"].double(), model_from_world).float(),
        rev["target_boxes_model"],
        atol=1e-4,
        rtol=0,
    )
    assert not torch.allclose(rev["target_boxes_model"], fwd["target_boxes_model"], atol=1e-3)  # another model frame
    # reverse_prob 0.5: deterministic per key, both orders over the draws, never in evaluation
    half = VidLLMDataset(
        _cfg(synthetic_root, tasks=["grounding"], task_weights=[1.0], reverse_prob=0.5), "train", deterministic=False
    )
    flags = [half.reversed_draw(0, d) for d in range(40)]
    assert 8 < sum(flags) < 32 and flags == [half.reversed_draw(0, d) for d in range(40)]
    d = flags.index(True)
    assert half[draw_key(0, d, n)]["frame_ids"].tolist() == fwd["frame_ids"].flip(0).tolist()
    assert half[draw_key(0, flags.index(False), n)]["frame_ids"].tolist() == fwd["frame_ids"].tolist()
    off = VidLLMDataset(_cfg(synthetic_root, tasks=["grounding"], task_weights=[1.0]), "train", deterministic=False)
    assert not any(off.reversed_draw(0, d) for d in range(20))


def test_questions_per_clip_brings_other_records_of_the_same_scene(synthetic_root):
    from vidllm.data.resumable import draw_key

    cfg = _cfg(synthetic_root, tasks=["recon", "qa", "grounding"], task_weights=[1.0, 1.0, 1.0], questions_per_clip=4)
    train = VidLLMDataset(cfg, "train", deterministic=False)
    n = len(train)
    vl_index = next(i for i, (t, _) in enumerate(train.samples) if t == "qa")
    item = train[draw_key(vl_index, 5, n)]
    extras = item["extra_texts"]
    assert len(extras) == 3
    ids = [item["record_id"]] + [e["record_id"] for e in extras]
    assert len(set(ids)) == 4  # the drawn record is not repeated, nor is any extra
    scene = item["scene_id"]
    for e in extras:
        assert e["task"] in ("qa", "grounding") and (e["record_id"].startswith(scene) or e["task"] == "qa")
        assert e["target_boxes"].shape[1:] == (6,) and e["target_boxes_model"].shape == e["target_boxes"].shape
    # a function of the key: the same key gives the same extras, other draws other ones
    again = train[draw_key(vl_index, 5, n)]["extra_texts"]
    assert [e["record_id"] for e in again] == [e["record_id"] for e in extras]
    others = {tuple(e["record_id"] for e in train[draw_key(vl_index, d, n)]["extra_texts"]) for d in range(1, 8)}
    assert len(others) > 1
    # the extras are VL samples of the same scene, and each is the record the dataset gives for that sample
    other = train.same_scene_records(vl_index, 5)
    assert [train.samples[i][1].scene_id for i in other] == [scene] * 3
    assert [train[i]["record_id"] for i in other] == [e["record_id"] for e in extras]
    batch = collate_clips([item, train[draw_key(0, 1, n)]])  # a recon row has no extras
    assert [len(x) for x in batch["extra_texts"]] == [3, 0]
    assert "extra_texts" not in train[draw_key(0, 1, n)]
    val = VidLLMDataset(cfg, "val", deterministic=True)
    assert "extra_texts" not in val[len(val) - 1]
    with pytest.raises(ValueError, match="questions_per_clip"):
        _cfg(synthetic_root, questions_per_clip=0)
