"""Dense-captioning evaluation: Scan2Cap CIDEr / BLEU-4 / METEOR / ROUGE-L @0.5 IoU (needs the ``eval`` extra for the scores).

    python tools/eval_scan2cap.py --checkpoint DIR --data DIR [--split val] [--proposals gt|DIR] [--iou 0.5] --out DIR

Runs ``vidllm eval scan2cap`` with the same arguments (``vidllm eval scan2cap --help`` lists them). Needs the
package installed (``pip install -e .``), like the console script.
"""

import sys

from vidllm.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["eval", "scan2cap", *sys.argv[1:]]))
