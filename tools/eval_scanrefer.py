"""Visual-grounding evaluation: ScanRefer Acc@0.25 / Acc@0.5 (overall, unique, multiple) or Multi3DRefer F1@0.25 / F1@0.5.

    python tools/eval_scanrefer.py --checkpoint outputs/demo/stage2/model --data outputs/demo/data \\
        --split val --proposals gt --out outputs/eval/scanrefer

Writes ``predictions.json`` (per query: ``scene_id, object_id, ann_id, eval_type, pred_box, gt_box,
iou``; boxes ``[cx, cy, cz, dx, dy, dz]`` in the aligned world) and ``metrics.json``, and prints the
table. Each scene's clip is sampled once with the model's frame settings; boxes predicted in the
model frame are mapped to the aligned world with the clip's GT first-frame pose. ``--proposals``:
'gt' (the scene's GT boxes; the head picks one), 'none' (box regression) or a directory of
``<scene_id>.npy`` ``[Q, 6]`` AABBs (Mask3D-style instances turned into boxes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidllm.evaluation.cli import eval_parser, load_pipeline_and_clips, run_tool  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = eval_parser(__doc__.split("\n\n")[0], proposals=True)
    p.add_argument("--task", choices=("scanrefer", "multi3drefer"), default="scanrefer", help="query set and metric")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from vidllm.evaluation.grounding import evaluate_multi3drefer, evaluate_scanrefer
        from vidllm.evaluation.predictor import ModelPredictor
        from vidllm.evaluation.report import format_table, write_outputs

        pipeline, clips = load_pipeline_and_clips(args, ["grounding"], grounding_source=args.task)
        predictor = ModelPredictor(pipeline, args.batch_size)
        if args.task == "scanrefer":
            preds, metrics = evaluate_scanrefer(predictor, clips, args.proposals, args.limit, progress=not args.quiet)
        else:
            preds, metrics = evaluate_multi3drefer(predictor, clips, args.limit, progress=not args.quiet)
        write_outputs(args.out, preds, metrics)
        print(
            format_table(
                metrics,
                f"{args.task} ({args.split}, proposals={getattr(args, 'proposals', 'none')}, {len(preds)} queries)",
            )
        )
        return 0

    return run_tool("eval_scanrefer", body)


if __name__ == "__main__":
    raise SystemExit(main())
