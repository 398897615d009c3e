"""Demo step 'export': one held-out scene through the Python API — point cloud (PLY, cameras,
preview with predicted and GT boxes) and answers to three questions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vidllm.config import VidLLMConfig
from vidllm.data.annotations import read_scanqa, read_scanrefer
from vidllm.data.labels import read_label_map
from vidllm.data.scannet import load_scannet_scene
from vidllm.evaluation.report import write_json
from vl.grounding import boxes_in_model_frame

__all__ = ["export_and_answer"]


def export_and_answer(
    pipeline, cfg: VidLLMConfig, out: Path, questions: list[str] | None = None, max_boxes: int = 4
) -> dict:
    """Reconstruct, ground and answer on the first held-out scene with ``pipeline`` (a
    :class:`vidllm.api.VidLLMPipeline`); writes ``out/scene.{ply,cameras.json,png}``, ``out/boxes.json``
    (model frame) and ``out/answers.json``. Returns what the report shows."""
    from vidllm.viz import render_pointcloud

    root = Path(cfg.data.root)
    scene_id = (root / "splits" / "val.txt").read_text().split()[0]
    scene = load_scannet_scene(root / "scans" / scene_id, label_map=read_label_map(cfg.data.label_map))
    valid = np.flatnonzero(scene.valid)
    video = [scene.color_path(scene.frame_ids[i]) for i in valid]  # a list of frame paths: one of the API's video forms
    rec = pipeline.reconstruct(video)
    first = valid[rec.frame_indices[0]]  # the model frame is the first sampled frame's camera
    world_from_model = torch.as_tensor(scene.aligned_c2w[first], dtype=torch.float32)

    val_ids = set((root / "splits" / "val.txt").read_text().split())
    refer = [
        r
        for r in read_scanrefer(
            root / "annotations" / "ScanRefer_filtered_val.json",
            label_map=read_label_map(cfg.data.label_map),
            scene_ids=val_ids,
        )
        if r.scene_id == scene_id
    ][:max_boxes]
    grounded = pipeline.ground_many(video, [r.description for r in refer]) if refer else []
    pred_boxes = np.stack([g.box for g in grounded]) if grounded else np.zeros((0, 6))
    gt_world = torch.as_tensor(
        np.stack([scene.objects.boxes[scene.objects.index_of(r.object_id)] for r in refer])
        if refer
        else np.zeros((0, 6)),
        dtype=torch.float32,
    )
    gt_boxes = boxes_in_model_frame(gt_world, world_from_model).numpy() if len(gt_world) else np.zeros((0, 6))

    out.mkdir(parents=True, exist_ok=True)
    kept = rec.filter_confidence(0.1)
    ply = kept.save(out / "scene.ply")
    write_json(out / "scene.cameras.json", kept.cameras_dict())
    boxes_path = write_json(out / "boxes.json", {"pred": pred_boxes.tolist(), "gt": gt_boxes.tolist()})
    preview = render_pointcloud(
        out / "scene.png",
        kept.points,
        kept.colors,
        [(pred_boxes, "red", "predicted"), (gt_boxes, "lime", "GT")],
        kept.camera_centers,
        title=f"{scene_id}: {len(kept)} points, scale {rec.scale:.2f}",
        up_axis=1,
    )

    qa = [
        r
        for r in read_scanqa(root / "annotations" / "ScanQA_v1.0_val.json", scene_ids=val_ids)
        if r.scene_id == scene_id
    ]
    asked = list(questions) if questions else [r.question for r in qa[:3]]
    refs = {r.question: list(r.answers) for r in qa}
    answers = pipeline.answer_many(video, asked)
    qa_rows = [
        {"question": q, "answer": a.text, "reference": refs.get(q, []), "boxes": a.boxes.round(3).tolist()}
        for q, a in zip(asked, answers)
    ]
    write_json(out / "answers.json", qa_rows)
    descriptions = [
        {
            "description": r.description,
            "object_id": r.object_id,
            "pred_box": p.round(3).tolist(),
            "gt_box": g.round(3).tolist(),
        }
        for r, p, g in zip(refer, pred_boxes, gt_boxes)
    ]
    depth_figure = _depth_figure(pipeline, cfg, scene_id, out / "depth.png")
    frames_dir = root / "scans" / scene_id / "color"
    command = (
        f"python tools/export_pointcloud.py --checkpoint {Path(cfg.data.root).parent / 'stage2' / 'model'} --video {frames_dir} "
        f"--out {out / 'scene.ply'} --conf-threshold 0.1 --boxes {boxes_path}"
    )
    return {
        "scene_id": scene_id,
        "points": len(kept),
        "scale": rec.scale,
        "ply": str(ply),
        "preview": str(preview),
        "answers": qa_rows,
        "grounding": descriptions,
        "depth_figure": str(depth_figure),
        "command": command,
    }


def _depth_figure(pipeline, cfg: VidLLMConfig, scene_id: str, path: Path) -> Path:
    """GT vs predicted depth (aligned output and metric head) on the evaluation clip of ``scene_id``."""
    import dataclasses

    from vidllm.evaluation.clips import SceneClips
    from vidllm.viz import depth_comparison

    clip = SceneClips(dataclasses.replace(cfg.data, num_workers=0), "val", ["recon"]).clip(scene_id)
    images = clip["images"][None]
    out = pipeline.forward_geometry(images)
    rows = [("GT", clip["depth"].numpy()), ("aligned", out["depth_metric"][0].numpy())]
    if "metric_depth" in out:
        rows.append(("metric head", out["metric_depth"][0].numpy()))
    frames = (clip["images"].permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    return depth_comparison(path, frames, rows, title=f"{scene_id}: depth in metres")
