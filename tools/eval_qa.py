"""Question-answering evaluation: ScanQA or SQA3D EM@1 and refined EM (+ BLEU-4 / METEOR / ROUGE-L / CIDEr with the ``eval`` extra).

    python tools/eval_qa.py --checkpoint DIR --data DIR [--split val] [--task scanqa|sqa3d] [--no-captions] --out DIR

Runs ``vidllm eval scanqa`` with the same arguments (``vidllm eval scanqa --help`` lists them). Needs the
package installed (``pip install -e .``), like the console script.
"""

import sys

from vidllm.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["eval", "scanqa", *sys.argv[1:]]))
