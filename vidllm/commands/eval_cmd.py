"""``vidllm eval TASK``: a saved model on the held-out scenes of one benchmark (README "Evaluation protocols").

    vidllm eval scanrefer --checkpoint outputs/demo/stage2/model --data outputs/demo/data --split val \\
        --proposals gt --out outputs/eval/scanrefer
    vidllm eval multi3drefer|scanqa|sqa3d|scan2cap|recon --checkpoint DIR --data DIR --out DIR [options]

Every task writes ``<out>/predictions.json`` and ``<out>/metrics.json`` and prints its metric table. Each
scene's clip is sampled once with the model's frame settings (:class:`~vidllm.evaluation.clips.SceneClips`);
the runners live in :mod:`vidllm.evaluation`. ``tools/eval_*.py`` are wrappers of these subcommands;
``--task`` (ScanRefer / Multi3DRefer, ScanQA / SQA3D) is their option and picks the other task of the pair.
"""

from __future__ import annotations

import argparse
import sys
import time

from vidllm.evaluation.arguments import add_eval_arguments

GROUNDING_DESCRIPTION = """Visual grounding: ScanRefer Acc@0.25 / Acc@0.5 (overall, unique, multiple) or Multi3DRefer F1@0.25 / F1@0.5.

Writes predictions.json (per query: scene_id, object_id, ann_id, eval_type, pred_box, gt_box, iou; boxes
[cx, cy, cz, dx, dy, dz] in the aligned world) and metrics.json, and prints the table. Boxes predicted in
the model frame are mapped to the aligned world with the clip's GT first-frame pose. --proposals: 'gt'
(the scene's GT boxes; the head picks one), 'none' (box regression) or a directory of <scene_id>.npy [Q, 6]
AABBs (Mask3D-style instances turned into boxes). Multi3DRefer always uses the regressed boxes."""

QA_DESCRIPTION = """Question answering: ScanQA or SQA3D EM@1 and refined EM (+ BLEU-4 / METEOR / ROUGE-L / CIDEr with the eval extra).

Writes predictions.json (per question: question_id, scene_id, question, prediction, answers) and
metrics.json; prints the table. Without pycocoevalcap the n-gram metrics are listed under 'unavailable'
(EM needs nothing extra)."""

SCAN2CAP_DESCRIPTION = """Dense captioning: Scan2Cap CIDEr / BLEU-4 / METEOR / ROUGE-L @0.5 IoU (needs the eval extra for the scores).

Every object with ScanRefer descriptions is captioned from the proposal that overlaps it most (--proposals
gt or a directory of <scene_id>.npy); a caption counts only when that box has IoU >= --iou with the object.
Writes predictions.json and metrics.json."""

RECON_DESCRIPTION = """Reconstruction: depth δ1 / AbsRel / RMSE / log10, camera RRA@15 / RTA@15 / AUC@30, point-cloud Acc / Comp / Precision / Recall / F-score at 5 cm.

Depth is metric (no per-image alignment) for the aligned output and for the metric head alone;
relative_median adds the scale-free view. Poses are scored on every clip played forwards and reversed.
The point cloud is compared with the scene mesh where the clip sees it (vidllm/evaluation/reconstruction.py).
Writes predictions.json (per scene) and metrics.json."""

GROUNDING_TASKS = ("scanrefer", "multi3drefer")
QA_TASKS = ("scanqa", "sqa3d")
TASKS = (*GROUNDING_TASKS, *QA_TASKS, "scan2cap", "recon")
"""The subcommands of ``vidllm eval``."""


def _add_grounding(parser: argparse.ArgumentParser, task: str) -> None:
    add_eval_arguments(parser, proposals=True)
    parser.add_argument("--task", choices=GROUNDING_TASKS, default=task, help=f"query set and metric (default {task})")
    parser.set_defaults(evaluate=_grounding)


def _add_qa(parser: argparse.ArgumentParser, task: str) -> None:
    add_eval_arguments(parser)
    parser.add_argument("--task", choices=QA_TASKS, default=task, help=f"question set (default {task})")
    parser.add_argument("--no-captions", action="store_true", help="skip the n-gram metrics (EM only)")
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help="answer length cap (default: llm.max_new_tokens)"
    )
    parser.set_defaults(evaluate=_qa)


def _add_scan2cap(parser: argparse.ArgumentParser, task: str) -> None:
    add_eval_arguments(parser, proposals=True)
    parser.add_argument("--iou", type=float, default=0.5, help="IoU a caption's box needs with its object to count")
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help="caption length cap (default: llm.max_new_tokens)"
    )
    parser.set_defaults(evaluate=_scan2cap, task=task)


def _add_recon(parser: argparse.ArgumentParser, task: str) -> None:
    add_eval_arguments(parser)
    parser.add_argument("--no-pointcloud", action="store_true", help="skip the point-cloud metrics (no mesh needed)")
    parser.add_argument(
        "--conf-quantile",
        type=float,
        default=0.0,
        help="drop predicted points below this confidence quantile before scoring",
    )
    parser.set_defaults(evaluate=_recon, task=task)


SUBCOMMANDS = {
    "scanrefer": (_add_grounding, "ScanRefer Acc@0.25 / Acc@0.5 (overall, unique, multiple)", GROUNDING_DESCRIPTION),
    "multi3drefer": (_add_grounding, "Multi3DRefer F1@0.25 / F1@0.5", GROUNDING_DESCRIPTION),
    "scanqa": (_add_qa, "ScanQA EM@1, refined EM (+ n-gram metrics with the eval extra)", QA_DESCRIPTION),
    "sqa3d": (_add_qa, "SQA3D EM@1, refined EM (+ n-gram metrics with the eval extra)", QA_DESCRIPTION),
    "scan2cap": (
        _add_scan2cap,
        "Scan2Cap CIDEr / BLEU-4 / METEOR / ROUGE-L @0.5 IoU (eval extra)",
        SCAN2CAP_DESCRIPTION,
    ),
    "recon": (_add_recon, "depth, camera-pose and point-cloud metrics against the scene's GT", RECON_DESCRIPTION),
}
"""Subcommand → (function adding its options, one-line help, description)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="eval_task", metavar="TASK", required=True)
    for name, (add, help_text, description) in SUBCOMMANDS.items():
        task_parser = sub.add_parser(
            name,
            help=help_text,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add(task_parser, name)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``vidllm eval`` (:func:`add_arguments`)."""
    parser = argparse.ArgumentParser(prog="vidllm eval")
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    code = args.evaluate(args)
    print(f"vidllm eval {args.task}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return code


def _grounding(args: argparse.Namespace) -> int:
    from vidllm.evaluation.grounding import evaluate_multi3drefer, evaluate_scanrefer
    from vidllm.evaluation.loading import load_pipeline_and_clips
    from vidllm.evaluation.outputs import format_table, write_outputs
    from vidllm.evaluation.predictor import ModelPredictor

    pipeline, clips = load_pipeline_and_clips(args, ["grounding"], grounding_source=args.task)
    predictor = ModelPredictor(pipeline, args.batch_size)
    if args.task == "scanrefer":
        preds, metrics = evaluate_scanrefer(predictor, clips, args.proposals, args.limit, progress=not args.quiet)
    else:
        preds, metrics = evaluate_multi3drefer(predictor, clips, args.limit, progress=not args.quiet)
    write_outputs(args.out, preds, metrics)
    print(format_table(metrics, f"{args.task} ({args.split}, proposals={args.proposals}, {len(preds)} queries)"))
    return 0


def _qa(args: argparse.Namespace) -> int:
    from vidllm.evaluation.loading import load_pipeline_and_clips
    from vidllm.evaluation.outputs import format_table, write_outputs
    from vidllm.evaluation.predictor import ModelPredictor
    from vidllm.evaluation.qa import evaluate_qa

    task = "qa" if args.task == "scanqa" else "sqa"
    pipeline, clips = load_pipeline_and_clips(args, [task])
    preds, metrics = evaluate_qa(
        ModelPredictor(pipeline, args.batch_size),
        clips,
        task,
        args.limit,
        not args.no_captions,
        args.max_new_tokens,
        progress=not args.quiet,
    )
    write_outputs(args.out, preds, metrics)
    print(format_table(metrics, f"{args.task} ({args.split}, {len(preds)} questions)"))
    return 0


def _scan2cap(args: argparse.Namespace) -> int:
    from vidllm.evaluation.captions import evaluate_scan2cap
    from vidllm.evaluation.loading import load_pipeline_and_clips
    from vidllm.evaluation.outputs import format_table, write_outputs
    from vidllm.evaluation.predictor import ModelPredictor

    pipeline, clips = load_pipeline_and_clips(args, ["caption"])
    preds, metrics = evaluate_scan2cap(
        ModelPredictor(pipeline, args.batch_size),
        clips,
        args.proposals,
        args.limit,
        args.iou,
        args.max_new_tokens,
        progress=not args.quiet,
    )
    write_outputs(args.out, preds, metrics)
    print(format_table(metrics, f"scan2cap ({args.split}, {len(preds)} objects)"))
    return 0


def _recon(args: argparse.Namespace) -> int:
    from vidllm.evaluation.loading import load_pipeline_and_clips
    from vidllm.evaluation.outputs import format_table, write_outputs
    from vidllm.evaluation.reconstruction import evaluate_recon

    pipeline, clips = load_pipeline_and_clips(args, ["recon"])
    records, metrics = evaluate_recon(
        pipeline, clips, args.limit, not args.no_pointcloud, args.conf_quantile, progress=not args.quiet
    )
    write_outputs(args.out, records, metrics)
    table = {f"depth/{k}": v for k, v in metrics["depth"].items()}
    print(format_table(table, f"recon ({args.split}, {metrics['num_scenes']} scenes)"))
    for key in ("pose", "pointcloud"):
        if key in metrics:
            print(format_table(metrics[key], "pose (forwards and reversed clips)" if key == "pose" else key))
    for order, figures in metrics.get("pose_by_order", {}).items():
        print(format_table(figures, f"pose ({order} clips)"))
    return 0
