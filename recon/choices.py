"""Choice fields of the typed configs: each set of allowed values is one ``typing.Literal`` alias.

A config field annotated with a ``Literal`` alias (``mode: CTAMode = "bridge"``) is checked three
ways from that single definition: by OmegaConf when a YAML is merged onto the dataclass, by
jsonargparse on the ``vidllm fit`` command line (``--help`` lists the values), and by the
dataclass's ``__post_init__`` through :func:`check_choice` when the config is built in Python.
Tuples of the allowed values, where code needs one, are ``typing.get_args(alias)``.
"""

from __future__ import annotations

from typing import Any, get_args

__all__ = ["check_choice"]


def check_choice(key: str, value: Any, choices: Any) -> None:
    """Raise ``ValueError`` naming ``key`` and the allowed values when ``value`` is not one of ``choices``.

    Args:
        key: dotted config key of the field (``"cta.mode"``), used in the message.
        value: the field's value.
        choices: a ``typing.Literal`` alias (its arguments are the allowed values) or a tuple of them.
    """
    allowed = get_args(choices) or tuple(choices)
    if value not in allowed:
        raise ValueError(f"{key} = {value!r}; expected one of {list(allowed)}")
