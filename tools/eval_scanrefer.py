"""Visual-grounding evaluation: ScanRefer Acc@0.25 / Acc@0.5 (overall, unique, multiple) or Multi3DRefer F1@0.25 / F1@0.5.

    python tools/eval_scanrefer.py --checkpoint DIR --data DIR [--split val] [--proposals gt|none|DIR] [--task scanrefer|multi3drefer] --out DIR

Runs ``vidllm eval scanrefer`` with the same arguments (``vidllm eval scanrefer --help`` lists them). Needs the
package installed (``pip install -e .``), like the console script.
"""

import sys

from vidllm.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["eval", "scanrefer", *sys.argv[1:]]))
