"""``vidllm eval`` and ``vidllm export-pointcloud`` on synthetic scenes with a micro model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.helpers import micro_config
from vidllm.cli import main

pytestmark = pytest.mark.usefixtures("cli_logging")


@pytest.mark.parametrize(
    "argv",
    [["eval"], *(["eval", task] for task in ("scanrefer", "multi3drefer", "scanqa", "sqa3d", "scan2cap", "recon"))]
    + [["export-pointcloud"], ["export-checkpoint"]],
)
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: vidllm {' '.join(argv)}")
    if len(argv) == 2:
        assert "--checkpoint" in out and "--out" in out


def test_scanrefer_files_and_recomputed_accuracy(model_dir, synthetic_root, tmp_path, capsys):
    from vidllm.metrics.box_metrics import box_iou

    out = tmp_path / "sr"
    assert (
        main(
            [
                "eval",
                "scanrefer",
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
    from vidllm.metrics.answer_metrics import exact_match

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
        main(
            [
                "eval",
                "multi3drefer",
                "--checkpoint",
                str(model_dir),
                "--data",
                str(synthetic_root),
                "--out",
                str(out),
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
        main(
            [
                "eval",
                "scanrefer",
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


def test_qa_scan2cap_recon_tasks(model_dir, synthetic_root, tmp_path):
    for name, extra in (("scanqa", ["--limit", "4"]), ("scan2cap", ["--limit", "3"]), ("recon", [])):
        out = tmp_path / name
        argv = ["--checkpoint", str(model_dir), "--data", str(synthetic_root), "--out", str(out), "--quiet", *extra]
        assert main(["eval", name, *argv]) == 0, name
        metrics = json.loads((out / "metrics.json").read_text())
        preds = json.loads((out / "predictions.json").read_text())
        if name == "scanqa":
            assert metrics["count"] == 4 == len(preds) and 0 <= metrics["em@1"] <= metrics["refined_em"] <= 1
            from vidllm.evaluation.qa import question_type
            from vidllm.metrics.answer_metrics import exact_match

            by_type = metrics["em@1_by_type"]  # recomputed from predictions.json per question type
            assert sum(v["count"] for v in by_type.values()) == 4
            for qtype, v in by_type.items():
                mine = [p for p in preds if question_type(p["question"]) == qtype]
                assert v["count"] == len(mine)
                assert v["em@1"] == pytest.approx(np.mean([exact_match(p["prediction"], p["answers"]) for p in mine]))
        elif name == "scan2cap":
            assert metrics["count"] == 3 and metrics["matched"] == 3  # GT proposals: every box has IoU 1
        else:
            assert set(metrics["depth"]) == {"aligned", "metric_head", "relative_median"}
            assert 0 <= metrics["pose"]["rra@15"] <= 1 and 0 <= metrics["pointcloud"]["fscore"] <= 1
            # the static-camera baseline = the fraction of GT frame pairs that rotate less than 15°
            from vidllm.evaluation.clips import SceneClips, eval_data_config
            from vidllm.metrics.recon_metrics import relative_pose_errors

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
    from vidllm.evaluation.reconstruction import sample_mesh, visible_mesh_points

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


def _error_line(err: str) -> str:
    """The one ``vidllm eval: error: ...`` line of stderr (log records may precede it), without a traceback."""
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and lines[0].startswith("vidllm eval: error: "), err[-3000:]
    return lines[0]


def test_bad_input_is_one_line_naming_the_path_and_writes_nothing(tmp_path, capsys, model_dir, synthetic_root):
    """README "bad input": a missing checkpoint, data root or proposal file → one line naming it, exit 1, no output."""
    data = ["--data", str(synthetic_root)]
    cases = [
        (["scanrefer", "--checkpoint", str(tmp_path / "nope"), *data], "nope"),
        (["scanqa", "--checkpoint", str(model_dir), "--data", str(tmp_path / "no_data")], "no_data"),
        (["scanrefer", "--checkpoint", str(model_dir), *data, "--proposals", str(tmp_path / "no_props")], "no_props"),
        (["scan2cap", "--checkpoint", str(model_dir), *data, "--proposals", str(tmp_path / "no_props")], "no_props"),
    ]
    for argv, named in cases:
        assert main(["eval", *argv, "--out", str(tmp_path / "o"), "--quiet"]) == 1, argv
        assert named in _error_line(capsys.readouterr().err), argv
        assert not (tmp_path / "o").exists()


def test_tool_task_option_picks_the_other_task_of_the_pair():
    """``tools/eval_scanrefer.py --task multi3drefer`` and ``tools/eval_qa.py --task sqa3d`` (the wrappers prepend
    ``eval scanrefer`` / ``eval scanqa``) run the task named by ``--task``."""
    from vidllm.commands.eval_cmd import build_parser

    common = ["--checkpoint", "m", "--data", "d", "--out", "o"]
    parser = build_parser()
    assert parser.parse_args(["scanrefer", *common]).task == "scanrefer"
    assert parser.parse_args(["scanrefer", *common, "--task", "multi3drefer"]).task == "multi3drefer"
    assert parser.parse_args(["multi3drefer", *common]).task == "multi3drefer"
    assert parser.parse_args(["scanqa", *common, "--task", "sqa3d"]).task == "sqa3d"
    assert parser.parse_args(["sqa3d", *common]).task == "sqa3d"
    with pytest.raises(SystemExit):
        parser.parse_args(["scanqa", *common, "--task", "scanrefer"])  # only the other task of the pair


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
