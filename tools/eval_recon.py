"""Reconstruction evaluation: depth δ1 / AbsRel / RMSE / log10, camera RRA@15 / RTA@15 / AUC@30, point-cloud Acc / Comp / F-score at 5 cm.

    python tools/eval_recon.py --checkpoint DIR --data DIR [--split val] [--no-pointcloud] --out DIR

Runs ``vidllm eval recon`` with the same arguments (``vidllm eval recon --help`` lists them). Needs the
package installed (``pip install -e .``), like the console script.
"""

import sys

from vidllm.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["eval", "recon", *sys.argv[1:]]))
