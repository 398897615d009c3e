"""Prompt templates for the 3D vision–language tasks.

Every prompt holds exactly one ``<3d>`` placeholder (replaced by the 3D tokens inside the LLM
wrapper). Grounding answers are the single token ``<ground>`` whose hidden state feeds the
grounding head. Tasks:

* ``qa`` (ScanQA): ``<3d> question: {question} answer:``
* ``sqa`` (SQA3D): ``<3d> situation: {situation} question: {question} answer:``
* ``caption`` (Scan2Cap): ``<3d> describe the object at x {cx} y {cy} z {cz} . answer:`` (box
  centre in the model frame, one decimal), or without location when no box is given
* ``ground`` (ScanRefer / Multi3DRefer / Nr3D): ``<3d> find the object : {description} answer:``
"""

from __future__ import annotations

from collections.abc import Sequence

from vl.special_tokens import TOKEN_3D, TOKEN_GROUND

__all__ = ["TASKS", "GROUNDING_ANSWER", "render_prompt", "render_prompts", "template_words"]

TASKS = ("qa", "sqa", "caption", "ground")
GROUNDING_ANSWER = TOKEN_GROUND


def _location(center: Sequence[float] | None) -> str:
    if center is None:
        return ""
    cx, cy, cz = (float(v) for v in center[:3])
    return f" at x {cx:.1f} y {cy:.1f} z {cz:.1f}"


def render_prompt(
    task: str, question: str = "", situation: str = "", description: str = "", center: Sequence[float] | None = None
) -> str:
    """The user prompt of one sample (lower-case template words, one ``<3d>``).

    Args:
        task: one of :data:`TASKS`; question / situation / description: the sample's text fields;
        center: box centre ``[3]`` for captioning (model frame, metres), optional.
    """
    if task == "qa":
        return f"{TOKEN_3D} question: {question.strip()} answer:"
    if task == "sqa":
        return f"{TOKEN_3D} situation: {situation.strip()} question: {question.strip()} answer:"
    if task == "caption":
        return f"{TOKEN_3D} describe the object{_location(center)} . answer:"
    if task == "ground":
        return f"{TOKEN_3D} find the object : {description.strip()} answer:"
    raise ValueError(f"prompts: task = {task!r}; expected one of {list(TASKS)}")


def render_prompts(tasks: Sequence[str], questions=None, situations=None, descriptions=None, centers=None) -> list[str]:
    """Batched :func:`render_prompt`; each optional field is a sequence of length B (or None)."""
    n = len(tasks)

    def field(values, i, default):
        return default if values is None or values[i] is None else values[i]

    return [
        render_prompt(
            tasks[i],
            field(questions, i, ""),
            field(situations, i, ""),
            field(descriptions, i, ""),
            field(centers, i, None),
        )
        for i in range(n)
    ]


def template_words() -> list[str]:
    """Words, digits and punctuation the templates use (so a word-level tokenizer covers every prompt)."""
    words = "question situation answer describe the object at x y z find".split()
    return words + list(":.-?,!;'\"()/") + [str(d) for d in range(10)]
