"""Reconstruction evaluation run: depth (δ1, AbsRel, RMSE, log10), camera pose (RRA@15, RTA@15,
AUC@30 over all frame pairs) and point cloud (Acc, Comp, Precision, Recall, F-score at 5 cm after
2 cm voxel down-sampling) against the scene mesh (README "Evaluation protocols").

Camera poses are scored on every clip played **forwards and reversed** (the same frames in reverse
order; the model frame is then the last frame's camera), so that the order of the frames alone —
e.g. a head that always turns one way — cannot pass: ``pose`` pools the frame pairs of both plays,
``pose_by_order`` has each alone. Depth and point clouds are scored on the forward plays only (as before).

Depth is evaluated three ways, all metric (no per-image alignment unless named):
``aligned`` — the reconstruction branch's depth after real-scale alignment (the model's output);
``metric_head`` — the metric depth model alone (the paper's "MD w/o alignment" comparison);
``relative_median`` — the relative depth with per-image median scaling (scale-free quality).

The point-cloud GT is the scene mesh, sampled uniformly on its surface (2 cm spacing, capped)
and restricted to the part the clip sees: a mesh point counts when it projects into some frame
within 5 cm (or 5 %) of that frame's GT depth. Predicted points are mapped to the aligned world
with the clip's GT first-frame pose (``world_from_model``) after re-expressing them in the
predicted first camera, so the metric scale is tested, not re-fitted.
"""

from __future__ import annotations

import numpy as np
import torch

from recon.geometry import depth_to_world_points
from vidllm.errors import DataError
from vidllm.evaluation.clips import SceneClips
from vidllm.metrics.recon_metrics import depth_metrics, pointcloud_metrics, pose_metrics
from vidllm.progress import progress_bar

__all__ = ["evaluate_recon", "visible_mesh_points", "predicted_world_points"]


def sample_mesh(path, spacing: float = 0.02, max_points: int = 200_000, seed: int = 0) -> np.ndarray:
    """Points ``[N, 3]`` sampled uniformly on the surface of a PLY mesh (its own frame)."""
    import open3d as o3d

    mesh = o3d.io.read_triangle_mesh(str(path))
    if len(mesh.triangles) == 0:
        raise DataError(f"{path}: mesh has no triangles")
    n = int(min(max_points, max(1000, mesh.get_surface_area() / spacing**2)))
    o3d.utility.random.seed(seed)
    return np.asarray(mesh.sample_points_uniformly(number_of_points=n).points, dtype=np.float64)


def visible_mesh_points(points_world: np.ndarray, clip: dict, tolerance: float = 0.05) -> np.ndarray:
    """The aligned-world points that some frame of ``clip`` sees (depth agrees with its GT depth)."""
    wfm = clip["world_from_model"].double().numpy()
    ext = clip["extrinsics"].double().numpy()  # world(model)→camera
    k = clip["intrinsics"].double().numpy()
    depth = clip["depth"].double().numpy()
    p_model = (points_world - wfm[:3, 3]) @ wfm[:3, :3]  # inverse rigid transform
    seen = np.zeros(len(points_world), dtype=bool)
    h, w = depth.shape[-2:]
    for i in range(ext.shape[0]):  # one projection per frame
        cam = p_model @ ext[i, :, :3].T + ext[i, :, 3]
        z = cam[:, 2]
        front = z > 1e-6
        uv = cam[:, :2] / np.where(front, z, 1.0)[:, None] * np.array([k[i, 0, 0], k[i, 1, 1]]) + np.array(
            [k[i, 0, 2], k[i, 1, 2]]
        )
        u, v = np.round(uv[:, 0]).astype(np.int64), np.round(uv[:, 1]).astype(np.int64)
        inside = front & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        d = np.zeros(len(z))
        d[inside] = depth[i, v[inside], u[inside]]
        seen |= inside & (d > 0) & (np.abs(d - z) <= np.maximum(tolerance, 0.05 * d))
    return points_world[seen]


def predicted_world_points(out: dict, clip: dict, conf_quantile: float = 0.0) -> np.ndarray:
    """Aligned-world points ``[N, 3]`` of a batch-1 reconstruction (see the module docstring)."""
    depth = out["depth_metric"][0].float()
    ext = out["extrinsic_metric"][0].float()
    pts = depth_to_world_points(depth, ext, out["intrinsic"][0].float())
    valid = (depth > 0) & torch.isfinite(pts).all(-1)
    if conf_quantile > 0:
        conf = out["depth_conf"][0].float()
        valid &= conf >= torch.quantile(conf[valid].flatten(), conf_quantile)
    p = pts[valid].double()
    p_cam0 = p @ ext[0, :, :3].double().T + ext[0, :, 3].double()
    wfm = clip["world_from_model"].double()
    return (p_cam0 @ wfm[:3, :3].T + wfm[:3, 3]).cpu().numpy()


def evaluate_recon(
    pipeline,
    clips: SceneClips,
    limit: int | None = None,
    pointcloud: bool = True,
    conf_quantile: float = 0.0,
    progress: bool = True,
) -> tuple[list[dict], dict]:
    """Reconstruct one clip per scene of the split with ``pipeline`` (a :class:`vidllm.api.VidLLMPipeline`) and score it.

    Returns per-scene records (``scene_id``, ``scale``, the per-scene pose figures ``pose`` (forwards),
    ``pose_reversed`` and point-cloud figures) and pooled metrics ``{"depth": {"aligned", "metric_head",
    "relative_median"}, "pose" (forwards and reversed plays together), "pose_by_order": {"forward", "reversed"},
    "pose_static_baseline", "pointcloud"}``.
    """
    scene_ids = list(clips.dataset.scene_ids)
    if limit:
        scene_ids = scene_ids[:limit]
    if not scene_ids:
        raise DataError(f"{clips.cfg.root}: split '{clips.dataset.split}' has no scenes")
    device = pipeline.device
    preds = {"aligned": [], "metric_head": [], "relative": []}
    gts, records, clouds = [], [], []
    pred_ext: dict[str, list] = {"forward": [], "reversed": []}
    gt_ext: dict[str, list] = {"forward": [], "reversed": []}
    for scene_id in progress_bar(scene_ids, desc="recon", unit="scene", enabled=progress):
        clip = clips.clip(scene_id)
        images = clip["images"][None].to(device)
        out = pipeline.forward_geometry(images)
        preds["aligned"].append(out["depth_metric"][0].float().cpu().numpy())
        preds["relative"].append(out["depth"][0].float().cpu().numpy())
        if "metric_depth" in out:
            preds["metric_head"].append(out["metric_depth"][0].float().cpu().numpy())
        gts.append(clip["depth"].numpy())
        pred_ext["forward"].append(out["extrinsic_metric"][0].float().cpu().numpy())
        gt_ext["forward"].append(clip["extrinsics"].numpy())
        rec = {"scene_id": scene_id, "scale": float(out["scale"][0]), "frames": int(clip["images"].shape[0])}
        if clip["images"].shape[0] >= 2:
            rec["pose"] = pose_metrics(pred_ext["forward"][-1], gt_ext["forward"][-1])
            backwards = clips.clip(scene_id, reverse=True)
            out_rev = pipeline.forward_geometry(backwards["images"][None].to(device))
            pred_ext["reversed"].append(out_rev["extrinsic_metric"][0].float().cpu().numpy())
            gt_ext["reversed"].append(backwards["extrinsics"].numpy())
            rec["pose_reversed"] = pose_metrics(pred_ext["reversed"][-1], gt_ext["reversed"][-1])
        if pointcloud:
            scene = clips.scene(scene_id)
            m = scene.axis_alignment
            gt_pts = visible_mesh_points(sample_mesh(scene.mesh_path) @ m[:3, :3].T + m[:3, 3], clip)
            pc = pointcloud_metrics(predicted_world_points(out, clip, conf_quantile), gt_pts)
            rec["pointcloud"] = pc
            clouds.append(pc)
        records.append(rec)
    gt = np.concatenate(gts)
    metrics: dict = {
        "depth": {
            "aligned": depth_metrics(np.concatenate(preds["aligned"]), gt),
            "relative_median": depth_metrics(np.concatenate(preds["relative"]), gt, alignment="median"),
        },
        "num_scenes": len(scene_ids),
    }
    if preds["metric_head"]:
        metrics["depth"]["metric_head"] = depth_metrics(np.concatenate(preds["metric_head"]), gt)
    if pred_ext["reversed"]:
        # the static-camera baseline: every frame at frame 0's pose (what a camera head that ignores the
        # images predicts); only its rotation figure is meaningful (its relative translations are all zero)
        def static(gt_poses: np.ndarray) -> float:
            return pose_metrics(np.broadcast_to(np.eye(3, 4), gt_poses.shape).copy(), gt_poses)["rra@15"]

        both_pred = np.stack(pred_ext["forward"] + pred_ext["reversed"])
        both_gt = np.stack(gt_ext["forward"] + gt_ext["reversed"])
        metrics["pose"] = pose_metrics(both_pred, both_gt)
        metrics["pose_by_order"] = {
            k: pose_metrics(np.stack(pred_ext[k]), np.stack(gt_ext[k])) for k in ("forward", "reversed")
        }
        metrics["pose_static_baseline"] = {
            "rra@15": static(both_gt),
            "by_order": {k: {"rra@15": static(np.stack(gt_ext[k]))} for k in gt_ext},
        }
    if clouds:
        metrics["pointcloud"] = {
            k: float(np.mean([c[k] for c in clouds])) for k in clouds[0] if isinstance(clouds[0][k], float)
        }
    return records, metrics
