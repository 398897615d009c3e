"""Reconstruction evaluation: depth δ1 / AbsRel / RMSE / log10, camera RRA@15 / RTA@15 / AUC@30, point-cloud Acc / Comp / Precision / Recall / F-score at 5 cm.

    python tools/eval_recon.py --checkpoint outputs/demo/stage2/model --data outputs/demo/data --split val --out outputs/eval/recon

Depth is metric (no per-image alignment) for the aligned output and for the metric head alone;
``relative_median`` adds the scale-free view. The point cloud is compared with the scene mesh
where the clip sees it (see ``vidllm/evaluation/recon.py``). Writes ``predictions.json`` (per scene)
and ``metrics.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidllm.evaluation.cli import eval_parser, load_pipeline_and_clips, run_tool  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = eval_parser(__doc__.split("\n\n")[0])
    p.add_argument("--no-pointcloud", action="store_true", help="skip the point-cloud metrics (no mesh needed)")
    p.add_argument(
        "--conf-quantile",
        type=float,
        default=0.0,
        help="drop predicted points below this confidence quantile before scoring",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from vidllm.evaluation.recon import evaluate_recon
        from vidllm.evaluation.report import format_table, write_outputs

        pipeline, clips = load_pipeline_and_clips(args, ["recon"])
        records, metrics = evaluate_recon(
            pipeline, clips, args.limit, not args.no_pointcloud, args.conf_quantile, progress=not args.quiet
        )
        write_outputs(args.out, records, metrics)
        table = {**{f"depth/{k}": v for k, v in metrics["depth"].items()}}
        print(format_table(table, f"recon ({args.split}, {metrics['num_scenes']} scenes)"))
        for key in ("pose", "pointcloud"):
            if key in metrics:
                print(format_table(metrics[key], "pose (forwards and reversed clips)" if key == "pose" else key))
        for order, figures in metrics.get("pose_by_order", {}).items():
            print(format_table(figures, f"pose ({order} clips)"))
        return 0

    return run_tool("eval_recon", body)


if __name__ == "__main__":
    raise SystemExit(main())
