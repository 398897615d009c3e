"""tools/eval_*.py and tools/export_pointcloud.py on synthetic scenes with a micro model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.helpers import load_script, micro_config


def _tool(name: str):
    return load_script(f"tools/{name}.py")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    from vidllm.model import VidLLM

    torch.manual_seed(0)
    return VidLLM(micro_config(**{"data.num_frames": 3}), tokenizer).save_pretrained(
        tmp_path_factory.mktemp("tools") / "model"
    )


@pytest.mark.parametrize("name", ["eval_scanrefer", "eval_qa", "eval_scan2cap", "eval_recon", "export_pointcloud"])
def test_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        _tool(name).main(["--help"])
    assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_scanrefer_files_and_recomputed_accuracy(model_dir, synthetic_root, tmp_path, capsys):
    from vidllm.metrics.grounding import box_iou

    out = tmp_path / "sr"
    assert (
        _tool("eval_scanrefer").main(
            [
                "--checkpoint",
                str(model_dir),
                "--data",
                str(synthetic_root),
                "--out",
                str(out),
                "--proposals",
                "none",
                "--batch-size",
                "3",
                "--quiet",
            ]
        )
        == 0
    )
    preds = json.loads((out / "predictions.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert preds and {"scene_id", "object_id", "ann_id", "eval_type", "pred_box", "gt_box", "iou"} <= set(preds[0])
    ious = np.array([float(box_iou(np.array(p["pred_box"]), np.array(p["gt_box"]))) for p in preds])
    np.testing.assert_allclose(ious, [p["iou"] for p in preds], atol=1e-9)
    for k in (0.25, 0.5):
        assert metrics["overall"][f"acc@{k:g}"] == pytest.approx(float(np.mean(ious >= k)))
        for split in ("unique", "multiple"):
            sel = np.array([p["eval_type"] == split for p in preds])
            expected = float(np.mean(ious[sel] >= k)) if sel.any() else None
            assert metrics[split][f"acc@{k:g}"] == (pytest.approx(expected) if expected is not None else None)
    assert metrics["overall"]["count"] == len(preds)
    assert "acc@0.25" in capsys.readouterr().out


class OraclePredictor:
    """Picks, for each description, the proposal that is the described object (knows the annotations)."""

    def __init__(self, clips):
        self.clips = clips
        self.targets = {(r.scene_id, r.description): r.object_id for r in clips.records("grounding")}

    def prepare(self, clip):
        self.scene = self.clips.scene(clip["scene_id"])

    def ground(self, descriptions, proposals):
        out = []
        for d in descriptions:
            gt = self.scene.objects.boxes[self.scene.objects.index_of(self.targets[(self.scene.scene_id, d)])]
            i = int(np.argmin(np.abs(proposals.numpy() - gt).sum(1)))
            out.append(
                {
                    "box": proposals[i],
                    "boxes": proposals[i : i + 1],
                    "scores": torch.ones(1),
                    "proposal_index": i,
                    "proposal_best": i,
                }
            )
        return out


def test_oracle_with_gt_proposals_is_perfect(synthetic_root):
    from vidllm.config import DataConfig
    from vidllm.evaluation.clips import SceneClips, eval_data_config
    from vidllm.evaluation.grounding import evaluate_scanrefer

    clips = SceneClips(eval_data_config(DataConfig(num_frames=2, image_size=56), synthetic_root), "val", ["grounding"])
    preds, metrics = evaluate_scanrefer(OraclePredictor(clips), clips, "gt", progress=False)
    assert metrics["overall"]["acc@0.5"] == 1.0 and metrics["overall"]["acc@0.25"] == 1.0
    assert metrics["overall"]["count"] == len(preds) > 0
    n_props = len(clips.scene(preds[0]["scene_id"]).objects.boxes)
    assert 0 < metrics["chance@0.5"] <= 1.0 and metrics["chance@0.5"] >= 1.0 / n_props - 1e-9


class HalfOraclePredictor(OraclePredictor):
    """Right on every other grounding query (a wrong proposal else); answers "red" to every question."""

    def ground(self, descriptions, proposals):
        out = super().ground(descriptions, proposals)
        for k, o in enumerate(out):
            if k % 2:
                i = (o["proposal_index"] + 1) % len(proposals)
                o.update(box=proposals[i], proposal_index=i, proposal_best=i)
        return out

    def generate(self, prompts, max_new_tokens=None):
        return ["red"] * len(prompts)


def test_visible_target_figures_by_hand(synthetic_root):
    from vidllm.config import DataConfig
    from vidllm.data.visibility import box_pixel_counts
    from vidllm.evaluation.clips import SceneClips, eval_data_config
    from vidllm.evaluation.grounding import evaluate_scanrefer
    from vidllm.evaluation.qa import evaluate_qa, question_type
    from vidllm.metrics.qa import exact_match

    cfg = eval_data_config(DataConfig(num_frames=8, image_size=112), synthetic_root)
    clips = SceneClips(cfg, "train", ["grounding"])
    preds, metrics = evaluate_scanrefer(HalfOraclePredictor(clips), clips, "gt", progress=False)
    for p in preds:  # visible = >= 1 % of the frame in >= 2 clip frames, from GT depth and GT boxes
        scene, clip = clips.scene(p["scene_id"]), clips.clip(p["scene_id"])
        counts = box_pixel_counts(
            clip["depth"],
            clip["extrinsics"],
            clip["intrinsics"],
            clip["world_from_model"],
            torch.as_tensor(scene.objects.boxes[[scene.objects.index_of(int(p["object_id"]))]]),
        ).numpy()[:, 0]
        assert p["target_visible"] == bool((counts >= 0.01 * clip["depth"][0].numel()).sum() >= 2)
    seen = [p for p in preds if p["target_visible"]]
    assert (
        seen
        and metrics["visible"]["count"] == len(seen)
        and metrics["visible_fraction"] == pytest.approx(len(seen) / len(preds))
    )
    for k in (0.25, 0.5):
        assert metrics["visible"][f"acc@{k:g}"] == pytest.approx(float(np.mean([p["iou"] >= k for p in seen])))
    assert metrics["visible"]["chance"] == pytest.approx(
        float(np.mean([1 / len(clips.scene(p["scene_id"]).objects.boxes) for p in seen]))
    )
    qa_clips = SceneClips(cfg, "train", ["qa"])
    qpreds, qmetrics = evaluate_qa(HalfOraclePredictor(clips), qa_clips, "qa", captions=False, progress=False)
    colour = [p for p in qpreds if question_type(p["question"]) == "what color" and p["targets_visible"]]
    assert colour and qmetrics["what_color_visible"]["count"] == len(colour)
    assert qmetrics["what_color_visible"]["em@1"] == pytest.approx(
        float(np.mean([exact_match("red", p["answers"]) for p in colour]))
    )
    assert all(p["targets_visible"] is None or isinstance(p["targets_visible"], bool) for p in qpreds)


def test_multi3drefer_and_proposal_dir(model_dir, synthetic_root, tmp_path):
    out = tmp_path / "m3d"
    assert (
        _tool("eval_scanrefer").main(
            [
                "--checkpoint",
                str(model_dir),
                "--data",
                str(synthetic_root),
                "--out",
                str(out),
                "--task",
                "multi3drefer",
                "--limit",
                "4",
                "--quiet",
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["overall"]["count"] == 4 and 0.0 <= metrics["overall"]["f1@0.25"] <= 1.0
    props = tmp_path / "props"
    props.mkdir()
    from vidllm.data.scannet import load_scannet_scene

    val = (synthetic_root / "splits" / "val.txt").read_text().split()[0]
    boxes = load_scannet_scene(synthetic_root / "scans" / val).objects.boxes
    np.save(props / f"{val}.npy", np.concatenate([boxes, np.ones((len(boxes), 1))], 1))  # extra score column is ignored
    out2 = tmp_path / "sr_dir"
    assert (
        _tool("eval_scanrefer").main(
            [
                "--checkpoint",
                str(model_dir),
                "--data",
                str(synthetic_root),
                "--out",
                str(out2),
                "--proposals",
                str(props),
                "--limit",
                "3",
                "--quiet",
            ]
        )
        == 0
    )
    preds = json.loads((out2 / "predictions.json").read_text())
    assert all(
        np.allclose(p["pred_box"], boxes[p["proposal_index"]], atol=1e-5) for p in preds
    )  # always a real proposal


def test_qa_scan2cap_recon_tools(model_dir, synthetic_root, tmp_path):
    for name, extra in (("eval_qa", ["--limit", "4"]), ("eval_scan2cap", ["--limit", "3"]), ("eval_recon", [])):
        out = tmp_path / name
        assert (
            _tool(name).main(
                ["--checkpoint", str(model_dir), "--data", str(synthetic_root), "--out", str(out), "--quiet", *extra]
            )
            == 0
        ), name
        metrics = json.loads((out / "metrics.json").read_text())
        preds = json.loads((out / "predictions.json").read_text())
        if name == "eval_qa":
            assert metrics["count"] == 4 == len(preds) and 0 <= metrics["em@1"] <= metrics["refined_em"] <= 1
            from vidllm.evaluation.qa import question_type
            from vidllm.metrics.qa import exact_match

            by_type = metrics["em@1_by_type"]  # recomputed from predictions.json per question type
            assert sum(v["count"] for v in by_type.values()) == 4
            for qtype, v in by_type.items():
                mine = [p for p in preds if question_type(p["question"]) == qtype]
                assert v["count"] == len(mine)
                assert v["em@1"] == pytest.approx(np.mean([exact_match(p["prediction"], p["answers"]) for p in mine]))
        elif name == "eval_scan2cap":
            assert metrics["count"] == 3 and metrics["matched"] == 3  # GT proposals: every box has IoU 1
        else:
            assert set(metrics["depth"]) == {"aligned", "metric_head", "relative_median"}
            assert 0 <= metrics["pose"]["rra@15"] <= 1 and 0 <= metrics["pointcloud"]["fscore"] <= 1
            # the static-camera baseline = the fraction of GT frame pairs that rotate less than 15°
            from vidllm.evaluation.clips import SceneClips, eval_data_config
            from vidllm.metrics.recon import relative_pose_errors

            data = micro_config(**{"data.num_frames": 3}).data
            clips = SceneClips(eval_data_config(data, synthetic_root), "val", ["recon"])
            rot = np.concatenate(
                [
                    relative_pose_errors(np.broadcast_to(np.eye(3, 4), (3, 3, 4)), clips.clip(s)["extrinsics"].numpy())[
                        0
                    ]
                    for s in clips.dataset.scene_ids
                ]
            )
            # poses are scored on every clip played forwards and reversed: 'pose' pools both, 'pose_by_order' has each
            by_order = metrics["pose_by_order"]
            assert set(by_order) == {"forward", "reversed"}
            assert metrics["pose"]["num_pairs"] == by_order["forward"]["num_pairs"] + by_order["reversed"]["num_pairs"]
            assert [r["pose"]["rra@15"] for r in preds] and all("pose_reversed" in r for r in preds)
            rot_rev = np.concatenate(
                [
                    relative_pose_errors(
                        np.broadcast_to(np.eye(3, 4), (3, 3, 4)), clips.clip(s, reverse=True)["extrinsics"].numpy()
                    )[0]
                    for s in clips.dataset.scene_ids
                ]
            )
            assert metrics["pose_static_baseline"]["by_order"]["forward"]["rra@15"] == pytest.approx(
                float(np.mean(rot < 15))
            )
            assert metrics["pose_static_baseline"]["by_order"]["reversed"]["rra@15"] == pytest.approx(
                float(np.mean(rot_rev < 15))
            )
            assert metrics["pose_static_baseline"]["rra@15"] == pytest.approx(
                float(np.mean(np.concatenate([rot, rot_rev]) < 15))
            )
            # the reversed clip's extrinsics are the GT poses relative to its first (= the forward clip's last) frame
            s = clips.dataset.scene_ids[0]
            scene, back = clips.scene(s), clips.clip(s, reverse=True)
            row = {int(f): i for i, f in enumerate(scene.frame_ids)}
            c2w = np.stack([scene.aligned_c2w[row[int(f)]] for f in back["frame_ids"]])
            np.testing.assert_allclose(
                back["extrinsics"].double().numpy(),
                np.stack([np.linalg.inv(c) @ c2w[0] for c in c2w])[:, :3],
                atol=1e-5,
            )
            assert back["frame_ids"].tolist() == clips.clip(s)["frame_ids"].flip(0).tolist()


def test_visible_mesh_points_keeps_only_seen_surface(synthetic_root):
    from vidllm.config import DataConfig
    from vidllm.evaluation.clips import SceneClips, eval_data_config
    from vidllm.evaluation.recon import sample_mesh, visible_mesh_points

    clips = SceneClips(eval_data_config(DataConfig(num_frames=3, image_size=56), synthetic_root), "val", ["recon"])
    scene_id = clips.dataset.scene_ids[0]
    scene, clip = clips.scene(scene_id), clips.clip(scene_id)
    m = scene.axis_alignment
    pts = sample_mesh(scene.mesh_path) @ m[:3, :3].T + m[:3, 3]
    seen = visible_mesh_points(pts, clip)
    assert 0 < len(seen) < len(pts)
    # a point far behind the first camera is never seen
    behind = (clip["world_from_model"].double().numpy() @ np.array([0, 0, -5.0, 1]))[:3]
    assert len(visible_mesh_points(behind[None], clip)) == 0


def test_export_pointcloud_round_trip(model_dir, synthetic_root, tmp_path, capsys):
    import open3d as o3d

    scene = sorted((synthetic_root / "scans").iterdir())[0]
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"pred": [[0, 0, 2, 0.5, 0.5, 0.5]], "gt": [[0.1, 0, 2, 0.5, 0.5, 0.5]]}))
    out = tmp_path / "o" / "scene.ply"
    assert (
        _tool("export_pointcloud").main(
            [
                "--checkpoint",
                str(model_dir),
                "--video",
                str(scene),
                "--out",
                str(out),
                "--cameras",
                "--conf-threshold",
                "0.2",
                "--boxes",
                str(boxes),
            ]
        )
        == 0
    )
    reported = int(capsys.readouterr().out.split("wrote ")[1].split(" points")[0])
    pcd = o3d.io.read_point_cloud(str(out))
    assert len(pcd.points) == reported > 0 and pcd.has_colors()
    cams = json.loads(out.with_suffix(".cameras.json").read_text())
    assert len(cams["frames"]) == 3 and np.asarray(cams["frames"][1]["intrinsic"]).shape == (3, 3)
    assert len(o3d.io.read_line_set(str(out.with_suffix(".cameras.ply"))).lines) == 3 * 8
    assert out.with_suffix(".png").stat().st_size > 1000
    assert not [p for p in out.parent.iterdir() if ".tmp" in p.name]  # nothing half-written left behind


def test_export_pointcloud_chunked(model_dir, synthetic_root, tmp_path, capsys):
    """--chunk-size with a Vid-LLM checkpoint: all sampled frames, metric; one chunk equals one forward."""
    import open3d as o3d

    scene = sorted((synthetic_root / "scans").iterdir())[0]
    tool = _tool("export_pointcloud")
    base = ["--checkpoint", str(model_dir), "--video", str(scene), "--max-frames", "6"]
    assert tool.main(base + ["--out", str(tmp_path / "full.ply")]) == 0
    assert tool.main(base + ["--out", str(tmp_path / "one.ply"), "--chunk-size", "6", "--overlap", "2"]) == 0
    read = lambda p: np.asarray(o3d.io.read_point_cloud(str(p)).points)  # noqa: E731
    np.testing.assert_array_equal(read(tmp_path / "one.ply"), read(tmp_path / "full.ply"))
    full = json.loads((tmp_path / "full.cameras.json").read_text())
    assert json.loads((tmp_path / "one.cameras.json").read_text()) == full
    assert tool.main(base + ["--out", str(tmp_path / "c.ply"), "--chunk-size", "4", "--overlap", "2"]) == 0
    cams = json.loads((tmp_path / "c.cameras.json").read_text())
    assert [f["index"] for f in cams["frames"]] == [f["index"] for f in full["frames"]]
    assert cams["scale"] > 0 and np.isfinite([f["extrinsic_w2c"] for f in cams["frames"]]).all()
    assert len(read(tmp_path / "c.ply")) > 0
    anchored = ["--chunk-size", "4", "--overlap", "2", "--chunk-layout", "anchored"]
    assert tool.main(base + ["--out", str(tmp_path / "a.ply")] + anchored) == 0
    assert len(json.loads((tmp_path / "a.cameras.json").read_text())["frames"]) == 6
    capsys.readouterr()
    assert tool.main(base + ["--out", str(tmp_path / "x.ply"), "--chunk-size", "4", "--overlap", "4"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--overlap 4" in err and len(err.splitlines()) == 1 and not (tmp_path / "x.ply").exists()


def test_vggt_checkpoint_export(teacher_files, tmp_path, capsys):
    import open3d as o3d

    frames = tmp_path / "frames"
    frames.mkdir()
    from PIL import Image

    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (42, 56, 3), dtype=np.uint8)).save(
            frames / f"{i}.png"
        )
    out = tmp_path / "v.ply"
    code = _tool("export_pointcloud").main(
        [
            "--vggt",
            str(teacher_files / "model.pt"),
            "--video",
            str(frames),
            "--out",
            str(out),
            "--image-size",
            "56",
            "--override",
            "depth_head_layers=[0,1,2,3]",
            "--override",
            "num_heads=2",
            "--override",
            "camera_num_heads=2",
            "--override",
            "encoder_num_heads=2",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert len(o3d.io.read_point_cloud(str(out)).points) > 0


def test_tool_errors_are_one_line(tmp_path, capsys, model_dir):
    code = _tool("eval_scanrefer").main(
        ["--checkpoint", str(tmp_path / "nope"), "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and "nope" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    code = _tool("eval_qa").main(
        ["--checkpoint", str(model_dir), "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and "scans" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_predictor_encodes_each_clip_once(model_dir, synthetic_root):
    from vidllm.api import VidLLMPipeline
    from vidllm.evaluation.clips import SceneClips, eval_data_config
    from vidllm.evaluation.predictor import ModelPredictor

    pipeline = VidLLMPipeline.from_pretrained(model_dir, device="cpu")
    clips = SceneClips(eval_data_config(pipeline.config.data, synthetic_root), "val", ["grounding"])
    scene_id = clips.dataset.scene_ids[0]
    calls = []
    encode = pipeline.vl_inputs
    pipeline.vl_inputs = lambda images: calls.append(1) or encode(images)
    cached, fresh = ModelPredictor(pipeline), ModelPredictor(pipeline, cache_clips=0)
    props = torch.as_tensor(clips.scene(scene_id).objects.boxes, dtype=torch.float32)
    assert cached.prepare(clips.clip(scene_id)) is not None
    first = cached.ground(["the red chair."], props)
    assert (
        cached.prepare(clips.clip(scene_id)) is None and len(calls) == 1
    )  # the second prepare of the clip is a cache hit
    again = cached.ground(["the red chair."], props)
    fresh.prepare(clips.clip(scene_id))
    other = fresh.ground(["the red chair."], props)
    assert len(calls) == 2
    for a, b in ((first, again), (first, other)):
        torch.testing.assert_close(a[0]["boxes"], b[0]["boxes"])
        torch.testing.assert_close(a[0]["scores"], b[0]["scores"])
    cached.prepare(clips.clip(scene_id, reverse=True))  # another frame order is another clip
    assert len(calls) == 3
