"""The special tokens of the 3D vision–language model: ``<3d>`` (placeholder for the 3D tokens in a
prompt) and ``<ground>`` (the grounding answer).

Their own module, free of dependencies, so that :mod:`vl.prompts` (which writes them into prompts)
and :mod:`vl.tokenizer` (which registers them, and adds the prompt templates' words to a word-level
vocabulary) both import it and neither imports the other. Both re-export the two names.
"""

from __future__ import annotations

__all__ = ["TOKEN_3D", "TOKEN_GROUND"]

TOKEN_3D = "<3d>"
TOKEN_GROUND = "<ground>"
