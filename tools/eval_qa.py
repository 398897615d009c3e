"""Question-answering evaluation: ScanQA or SQA3D EM@1 and refined EM (+ BLEU-4 / METEOR / ROUGE-L / CIDEr with the ``eval`` extra).

    python tools/eval_qa.py --checkpoint outputs/demo/stage2/model --data outputs/demo/data --split val --out outputs/eval/qa

Writes ``predictions.json`` (per question: ``question_id, scene_id, question, prediction, answers``)
and ``metrics.json``; prints the table. Without pycocoevalcap the n-gram metrics are listed under
``unavailable`` (EM needs nothing extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidllm.evaluation.cli import eval_parser, load_pipeline_and_clips, run_tool  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = eval_parser(__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=("scanqa", "sqa3d"), default="scanqa", help="question set")
    p.add_argument("--no-captions", action="store_true", help="skip the n-gram metrics (EM only)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="answer length cap (default: llm.max_new_tokens)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from vidllm.evaluation.predictor import ModelPredictor
        from vidllm.evaluation.qa import evaluate_qa
        from vidllm.evaluation.report import format_table, write_outputs

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

    return run_tool("eval_qa", body)


if __name__ == "__main__":
    raise SystemExit(main())
