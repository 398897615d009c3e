"""Export a Lightning training checkpoint to a ``save_pretrained`` model directory.

    python tools/export_checkpoint.py RUN/checkpoints/last.ckpt --out DIR [--config FILE] [--tokenizer DIR]

Runs ``vidllm export-checkpoint`` with the same arguments (``vidllm export-checkpoint --help`` lists them). Needs the
package installed (``pip install -e .``), like the console script.
"""

import sys

from vidllm.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["export-checkpoint", *sys.argv[1:]]))
