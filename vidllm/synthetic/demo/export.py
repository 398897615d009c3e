"""Demo step 'export': one held-out scene — grounding through the Python API, the point cloud (PLY, cameras,
preview with predicted and GT boxes) through ``vidllm export-pointcloud``, answers to three questions through
the Python API."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from vidllm.commands import export_pointcloud_cmd
from vidllm.config import VidLLMConfig
from vidllm.data.annotations import read_scanqa, read_scanrefer
from vidllm.data.labels import read_label_map
from vidllm.data.scannet import load_scannet_scene
from vidllm.evaluation.outputs import write_json
from vidllm.synthetic.demo.argv import command_line
from vl.grounding_head import boxes_in_model_frame

__all__ = ["export_and_answer", "export_argv"]


def export_argv(model_dir: str | os.PathLike, scene_dir: str | os.PathLike, out: Path, device: str) -> list[str]:
    """The ``vidllm export-pointcloud`` arguments of the demo's export: the model in ``model_dir`` on the frames
    of ``scene_dir`` with a valid pose, points above the 10 % confidence quantile, the boxes of ``out/boxes.json``
    in the preview, written to ``out/scene.{ply,cameras.json,png}``."""
    return [
        "--checkpoint",
        os.fspath(model_dir),
        "--video",
        os.fspath(scene_dir),
        "--skip-invalid-poses",
        "--out",
        str(out / "scene.ply"),
        "--conf-threshold",
        "0.1",
        "--boxes",
        str(out / "boxes.json"),
        "--device",
        device,
    ]


def export_and_answer(
    pipeline,
    cfg: VidLLMConfig,
    model_dir: str | os.PathLike,
    out: Path,
    questions: list[str] | None = None,
    max_boxes: int = 4,
) -> dict:
    """Ground, export and answer on the first held-out scene: ``pipeline`` (a :class:`vidllm.api.VidLLMPipeline`
    of the model saved in ``model_dir``) grounds up to ``max_boxes`` ScanRefer descriptions (``out/boxes.json``,
    predicted and GT boxes in the model frame), ``vidllm export-pointcloud`` writes ``out/scene.{ply,cameras.json,png}``
    on the same frames, and the pipeline answers ``questions`` (default: the scene's first three ScanQA
    questions, ``out/answers.json``). Returns what the report shows, with ``command``: the export command that ran."""
    root = Path(cfg.data.root)
    scene_id = (root / "splits" / "val.txt").read_text().split()[0]
    scene = load_scannet_scene(root / "scans" / scene_id, label_map=read_label_map(cfg.data.label_map))
    argv = export_argv(model_dir, scene.path, out, str(pipeline.device))
    args = export_pointcloud_cmd.build_parser().parse_args(argv)
    video = export_pointcloud_cmd.video_input(args)  # the frames with a valid pose: the API's list-of-paths form

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
    if grounded:  # the model frame is the camera of the first sampled frame (a row of the valid frames)
        first = np.flatnonzero(scene.valid)[grounded[0].point_cloud.frame_indices[0]]
        world_from_model = torch.as_tensor(scene.aligned_c2w[first], dtype=torch.float32)
        gt_world = torch.as_tensor(
            np.stack([scene.objects.boxes[scene.objects.index_of(r.object_id)] for r in refer]), dtype=torch.float32
        )
        gt_boxes = boxes_in_model_frame(gt_world, world_from_model).numpy()
    else:
        gt_boxes = np.zeros((0, 6))

    out.mkdir(parents=True, exist_ok=True)
    write_json(args.boxes, {"pred": pred_boxes.tolist(), "gt": gt_boxes.tolist()})
    exported = export_pointcloud_cmd.export(args)

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
    return {
        "scene_id": scene_id,
        "points": exported["points"],
        "scale": exported["scale"],
        "ply": exported["files"]["ply"],
        "preview": exported["files"]["preview"],
        "answers": qa_rows,
        "grounding": descriptions,
        "depth_figure": str(depth_figure),
        "command": command_line("vidllm export-pointcloud", argv),
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
