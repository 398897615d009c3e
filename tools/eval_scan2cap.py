"""Dense-captioning evaluation: Scan2Cap CIDEr / BLEU-4 / METEOR / ROUGE-L @0.5 IoU (needs the ``eval`` extra for the scores).

    python tools/eval_scan2cap.py --checkpoint outputs/demo/stage2/model --data outputs/demo/data --split val --out outputs/eval/scan2cap

Every object with ScanRefer descriptions is captioned from the proposal that overlaps it most
(``--proposals gt`` or a directory of ``<scene_id>.npy``); a caption counts only when that box has
IoU ≥ ``--iou`` with the object. Writes ``predictions.json`` and ``metrics.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidllm.evaluation.cli import eval_parser, load_pipeline_and_clips, run_tool  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = eval_parser(__doc__.split("\n\n")[0], proposals=True)
    p.add_argument("--iou", type=float, default=0.5, help="IoU a caption's box needs with its object to count")
    p.add_argument("--max-new-tokens", type=int, default=None, help="caption length cap (default: llm.max_new_tokens)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from vidllm.evaluation.captions import evaluate_scan2cap
        from vidllm.evaluation.predictor import ModelPredictor
        from vidllm.evaluation.report import format_table, write_outputs

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

    return run_tool("eval_scan2cap", body)


if __name__ == "__main__":
    raise SystemExit(main())
