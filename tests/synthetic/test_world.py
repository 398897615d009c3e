"""The synthetic generator: real-format output read back by the real readers, exact geometry, determinism."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

import numpy as np
import pytest

from vidllm.data import load_scannet_scene, read_label_map, read_multi3drefer, read_scanqa, read_scanrefer, read_sqa3d
from vidllm.data.scannet_io import read_depth, read_mesh_vertices, read_split
from vidllm.synthetic.layout import make_layout
from vidllm.synthetic.text import scene_language
from vidllm.synthetic.world import SynthParams, generate_dataset, scene_id_of


def _scenes(root):
    return sorted(p.name for p in (root / "scans").iterdir())


def test_layout_of_output(synthetic_root):
    assert _scenes(synthetic_root) == ["scene0000_00", "scene0001_00", "scene0002_00"]
    assert read_split(synthetic_root / "splits" / "train.txt") == ["scene0000_00", "scene0001_00"]
    assert read_split(synthetic_root / "splits" / "val.txt") == ["scene0002_00"]
    scene = synthetic_root / "scans" / "scene0000_00"
    assert sorted(int(p.stem) for p in (scene / "color").glob("*.jpg")) == list(range(8))
    assert (scene / "intrinsic" / "extrinsic_color.txt").is_file()
    header = (scene / "scene0000_00_vh_clean_2.ply").read_bytes()[:200].decode("ascii", "ignore")
    assert "binary_little_endian" in header and "property uchar red" in header


def test_gt_boxes_from_mesh_match_generator(synthetic_root, real_label_map):
    for scene_id in _scenes(synthetic_root):
        scene = load_scannet_scene(synthetic_root / "scans" / scene_id, label_map=real_label_map)
        gt = json.loads((synthetic_root / "synthetic_gt" / f"{scene_id}.json").read_text())
        assert not np.allclose(scene.axis_alignment, np.eye(4))
        np.testing.assert_allclose(scene.axis_alignment, gt["axis_alignment"], atol=1e-7)
        assert scene.objects.object_ids.tolist() == [o["object_id"] for o in gt["objects"]]
        np.testing.assert_allclose(scene.objects.boxes, [o["box"] for o in gt["objects"]], atol=1e-5)
        assert scene.objects.nyu40.tolist() == [real_label_map.id_of(o["raw_category"]) for o in gt["objects"]]
        assert 4 <= len(gt["objects"]) <= 12 and (scene.objects.nyu40 > 0).all()
        assert np.nonzero(~scene.valid)[0].tolist() == gt["invalid_pose_frames"]
        _, colors = read_mesh_vertices(scene.mesh_path)
        assert len(np.unique(colors, axis=0)) >= 4  # per-vertex colours: structure + palette colours


def test_unprojected_depth_lands_on_mesh(synthetic_root):
    import open3d as o3d

    for scene_id in _scenes(synthetic_root):
        scene = load_scannet_scene(synthetic_root / "scans" / scene_id, with_objects=False)
        vertices, _ = read_mesh_vertices(scene.mesh_path)
        mesh = o3d.io.read_triangle_mesh(str(scene.mesh_path))
        raycast = o3d.t.geometry.RaycastingScene()
        raycast.add_triangles(
            o3d.core.Tensor(vertices.astype(np.float32)), o3d.core.Tensor(np.asarray(mesh.triangles).astype(np.uint32))
        )
        k = scene.intrinsic_depth
        for i in np.nonzero(scene.valid)[0]:
            depth = read_depth(scene.depth_path(scene.frame_ids[i]), scene.depth_hw())
            v, u = np.nonzero(depth > 0)
            z = depth[v, u].astype(np.float64)
            cam = np.stack([(u - k[0, 2]) / k[0, 0] * z, (v - k[1, 2]) / k[1, 1] * z, z], -1)
            world = cam @ scene.poses_c2w[i, :3, :3].T + scene.poses_c2w[i, :3, 3]  # unaligned frame, as the mesh
            dist = raycast.compute_distance(o3d.core.Tensor(world.astype(np.float32))).numpy()
            assert (depth > 0).mean() > 0.99
            assert dist.mean() < 0.01, f"{scene_id} frame {i}: mean distance {dist.mean():.4f} m"


def test_annotation_files_read_by_real_readers(synthetic_root, real_label_map):
    ann = synthetic_root / "annotations"
    m3_types = set()
    for split in ("train", "val"):
        scenes = set(read_split(synthetic_root / "splits" / f"{split}.txt"))
        objects = {s: set(load_scannet_scene(synthetic_root / "scans" / s).objects.object_ids.tolist()) for s in scenes}
        refer = read_scanrefer(ann / f"ScanRefer_filtered_{split}.json", label_map=real_label_map, scene_ids=scenes)
        assert refer and all(r.object_id in objects[r.scene_id] for r in refer)
        # unique / multiple against a brute-force count over the file
        classes = defaultdict(set)
        for r in refer:
            classes[r.scene_id].add((r.object_id, real_label_map.scanrefer_class(r.object_name)))
        for r in refer:
            cls = real_label_map.scanrefer_class(r.object_name)
            same = sum(1 for _oid, c in classes[r.scene_id] if c == cls)
            assert r.eval_type == ("unique" if same == 1 else "multiple")
        qa = read_scanqa(ann / f"ScanQA_v1.0_{split}.json", scene_ids=scenes)
        assert qa and all(q.answers and set(q.object_ids) <= objects[q.scene_id] for q in qa)
        m3 = read_multi3drefer(ann / f"multi3drefer_{split}.json", scene_ids=scenes)
        m3_types |= {m.eval_type for m in m3}
        assert all(set(m.object_ids) <= objects[m.scene_id] for m in m3)
        sqa = read_sqa3d(
            ann / f"v1_balanced_questions_{split}_scannetv2.json",
            ann / f"v1_balanced_sqa_annotations_{split}_scannetv2.json",
            scene_ids=scenes,
        )
        assert sqa and all(s.answers for s in sqa)
    # three tiny scenes need not hold every kind (only visible objects are asked about): the kinds are tested on layouts below
    assert m3_types and m3_types <= {"mt", "st_w_d", "st_wo_d", "zt_w_d", "zt_wo_d"}


def test_language_has_unique_and_multiple_cases_and_all_question_kinds():
    labels = read_label_map()
    flags, questions = set(), []
    for index in range(12):
        rng = np.random.default_rng([3, index])
        layout = make_layout(rng)
        lang = scene_language(scene_id_of(index), layout, rng)
        counts = defaultdict(int)
        for o in layout.objects:
            counts[labels.scanrefer_class(o.category)] += 1
        flags |= {
            "unique" if counts[labels.scanrefer_class(r["object_name"])] == 1 else "multiple" for r in lang["scanrefer"]
        }
        questions += [q["question"] for q in lang["scanqa"]]
    assert flags == {"unique", "multiple"}
    for kind in ("what color", "how many", "where is", "which is bigger"):
        assert any(q.startswith(kind) for q in questions), kind


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "synthetic_info.json"):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_deterministic_per_seed_and_independent_of_workers(tmp_path):
    params = SynthParams(num_frames=3, width=56, height=42, depth_width=40, depth_height=30, invalid_pose_frames=1)
    generate_dataset(tmp_path / "a", 2, seed=5, params=params, workers=1)
    generate_dataset(tmp_path / "b", 2, seed=5, params=params, workers=2)
    generate_dataset(tmp_path / "c", 2, seed=6, params=params, workers=1)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_cli_synth(tmp_path, capsys):
    from vidllm.cli import main

    out = tmp_path / "s"
    size = ["--frames", "3", "--width", "56", "--height", "42"]
    assert main(["synth", "--out", str(out), "--scenes", "2", *size, "--workers", "1"]) == 0
    assert _scenes(out) == ["scene0000_00", "scene0001_00"]
    scene = load_scannet_scene(out / "scans" / "scene0001_00")
    assert scene.depth_hw() == (30, 40)
    assert main(["synth", "--out", str(out), "--scenes", "1"]) == 1
    assert "not empty" in capsys.readouterr().err


@pytest.mark.slow
def _names_after(text: str, marker: str) -> list[str]:
    """'<colour> <category>' phrases that follow ``marker`` in ``text`` (e.g. 'next to the ')."""
    from vidllm.synthetic.layout import CATEGORIES, PALETTE

    found = []
    for part in text.split(marker)[1:]:
        words = part.replace("?", " ").replace(".", " ").replace(",", " ").split()
        if words and words[0] in PALETTE:
            cat = next(c for c in sorted(CATEGORIES, key=len, reverse=True) if " ".join(words[1:]).startswith(c))
            found.append(f"{words[0]} {cat}")
    return found


def test_language_is_only_about_visible_objects_and_derivable():
    from vidllm.synthetic.text import NUMBER_WORDS, wall_phrase

    kinds, m3_kinds = set(), set()
    for index in range(16):
        rng = np.random.default_rng([4, index])
        layout = make_layout(rng)
        visible = rng.random(len(layout.objects)) < 0.6
        first = len(layout.structure)
        lang = scene_language(scene_id_of(index), layout, rng, visible)
        vis_ids = {first + i for i in np.nonzero(visible)[0]}
        vis_names = {f"{layout.objects[i].color} {layout.objects[i].category}" for i in np.nonzero(visible)[0]}
        # every visible object is described, no other
        assert {int(r["object_id"]) for r in lang["scanrefer"]} == vis_ids
        for r in lang["scanqa"]:
            assert set(r["object_ids"]) <= vis_ids
        for r in lang["multi3drefer"]:
            assert set(r["object_ids"]) <= vis_ids
            m3_kinds.add(r["eval_type"])
        texts = [r["description"] for r in lang["scanrefer"]] + [q["question"] for q in lang["scanqa"]]
        texts += [a for q in lang["scanqa"] for a in q["answers"]] + [q["situation"] for q in lang["sqa3d_questions"]]
        for text in texts:  # neighbour references name visible objects
            for marker in ("next to the ", "next to ", "the "):
                assert set(_names_after(text, marker)) <= vis_names, text
        for q in lang["scanqa"]:
            members = [i - first for i in q["object_ids"]]
            if q["question"].startswith("how many"):
                cat = layout.objects[members[0]].category
                everyone = [i for i, o in enumerate(layout.objects) if o.category == cat]
                # only when the clip shows every instance
                assert sorted(members) == everyone and visible[everyone].all()
                assert q["answers"] == [NUMBER_WORDS[len(everyone)]]
            if q["question"].startswith("where is"):
                o = layout.objects[members[0]]
                assert q["answers"][0] == wall_phrase(o.box, layout.size)  # the derivable answer first
                assert all(a.startswith("next to ") for a in q["answers"][1:]) and len(q["answers"]) <= 2
            if q["question"].startswith("what color"):
                assert q["answers"] == [layout.objects[members[0]].color]
            kinds.add(" ".join(q["question"].split()[:2]))
        if not visible.any():
            assert not lang["scanrefer"] and not lang["scanqa"] and not lang["sqa3d_questions"]
    assert kinds == {"what color", "where is", "how many", "which is"}
    assert m3_kinds == {"mt", "st_w_d", "st_wo_d", "zt_w_d", "zt_wo_d"}
    # all visible (the default): every object gets a colour and a 'where' question
    rng = np.random.default_rng([4, 99])
    layout = make_layout(rng)
    lang = scene_language("scene0099_00", layout, rng)
    assert sum(q["question"].startswith("what color") for q in lang["scanqa"]) == len(layout.objects)
    with pytest.raises(ValueError, match="one flag per object"):
        scene_language("scene0099_00", layout, rng, np.ones(len(layout.objects) + 1, dtype=bool))


def test_generator_records_visibility_and_asks_only_about_visible_objects(synthetic_root):
    from vidllm.data.sampling import sample_uniform
    from vidllm.data.visibility import visible_objects

    labels = read_label_map()
    vis_ids: dict[str, set[int]] = {}
    for scene_id in _scenes(synthetic_root):
        gt = json.loads((synthetic_root / "synthetic_gt" / f"{scene_id}.json").read_text())
        v = gt["visibility"]
        valid = [i for i in range(8) if i not in gt["invalid_pose_frames"]]
        assert v["clip_frames"] == sample_uniform(np.array(valid), SynthParams().clip_frames).tolist()
        pixels = np.array([o["pixels_per_frame"] for o in gt["objects"]]).T  # [F, O]
        assert pixels.shape == (8, len(gt["objects"])) and v["image_pixels"] == 112 * 84
        expected = visible_objects(pixels[v["clip_frames"]], v["image_pixels"], v["min_fraction"], v["min_frames"])
        assert [o["visible_in_clip"] for o in gt["objects"]] == expected.tolist()
        vis_ids[scene_id] = {o["object_id"] for o in gt["objects"] if o["visible_in_clip"]}
    assert any(vis_ids.values())
    for split in ("train", "val"):
        ann = synthetic_root / "annotations"
        for r in read_scanrefer(ann / f"ScanRefer_filtered_{split}.json", label_map=labels):
            assert r.object_id in vis_ids[r.scene_id]
        for r in read_scanqa(ann / f"ScanQA_v1.0_{split}.json"):
            assert set(r.object_ids) <= vis_ids[r.scene_id]
        for r in read_multi3drefer(ann / f"multi3drefer_{split}.json"):
            assert set(r.object_ids) <= vis_ids[r.scene_id]
