"""``vidllm fit|validate|test|predict``: Lightning training and evaluation of either stage.

    vidllm fit --stage 1 --config configs/tiny.yaml --trainer.max_steps 20
    vidllm fit --stage 2 --config configs/tiny.yaml --model.init_from outputs/stage1/model --trainer.max_steps 20
    vidllm fit --stage 2 --config configs/tiny.yaml --ckpt_path last          # resume the same stage

The command is :func:`vidllm.training.fit.fit` on the arguments after the command name (``vidllm fit --help``
lists them all with the config fields' docstrings; :mod:`vidllm.training.fit_args` describes them).
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str], name: str = "fit") -> int:
    """``vidllm <name> ARGV``: the exit status (``--help`` / ``--print_config`` raise ``SystemExit(0)``)."""
    from vidllm.training.fit import fit

    fit(argv, mode=name)
    return 0
