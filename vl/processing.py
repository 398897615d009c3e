"""The text processor of the 3D vision–language model (in the manner of transformers' ``LlavaProcessor``).

:class:`VidLLMProcessor` owns everything that turns text into tensors, so that no forward pass tokenises:

* prompt rendering from text records (the templates of :mod:`vl.prompts`, :func:`render_record`);
* the chat template (``llm.use_chat_template``) and BOS;
* tokenisation of prompts (one ``<3d>`` placeholder at most) and answers (+ EOS);
* padding of the batch (right padding: the LM wrapper re-pads after splicing, left for generation).

Its output, a :class:`dict` of CPU tensors (see :meth:`VidLLMProcessor.__call__`), is what
:class:`vl.llm.LanguageModel` consumes: the wrapper only splices the variable number of 3D tokens (and
the readout / GeoVR query tokens) in place of the placeholder. It runs in the training collate (DataLoader
workers), in the API and in the evaluation predictor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from vl.prompts import GROUNDING_ANSWER, render_prompt
from vl.special_tokens import TOKEN_3D, TOKEN_GROUND

__all__ = ["TEXT_KEYS", "VidLLMProcessor", "is_encoded", "render_record"]

TEXT_KEYS = ("input_ids", "attention_mask", "labels", "prompt_length", "placeholder", "question_ids", "question_mask")
"""The keys of an encoded text batch (:meth:`VidLLMProcessor.__call__`)."""


def is_encoded(text) -> bool:
    """True when ``text`` is a processor output (not a list of strings)."""
    return isinstance(text, Mapping) and "input_ids" in text and "placeholder" in text


def render_record(rec: Mapping) -> tuple[str, str]:
    """Prompt and answer of one text record (the text keys of a data batch row: ``task``, ``question``,
    ``situation``, ``description``, ``answer``; for captions ``target_boxes_model [T, 6]``, model frame, whose
    first box centre is the prompt's location). Grounding answers are :data:`vl.prompts.GROUNDING_ANSWER`."""
    task = rec["task"]
    if task == "qa":
        return render_prompt("qa", question=rec["question"]), rec["answer"]
    if task == "sqa":
        return render_prompt("sqa", question=rec["question"], situation=rec["situation"]), rec["answer"]
    if task == "caption":
        model_boxes = rec["target_boxes_model"]
        return render_prompt("caption", center=model_boxes[0, :3].tolist() if len(model_boxes) else None), rec["answer"]
    if task in ("grounding", "ground"):
        return render_prompt("ground", description=rec["description"]), GROUNDING_ANSWER
    raise ValueError(f"render_record: task = {task!r}; expected qa, sqa, caption or grounding")


class VidLLMProcessor:
    """Prompt rendering + tokenisation with the ``<3d>`` placeholder.

    Args:
        tokenizer: the LLM's tokenizer, holding the ``<3d>`` / ``<ground>`` special tokens and a pad and an
            eos token (:class:`vl.llm.LanguageModel` adds them; use :attr:`vl.llm.LanguageModel.processor`).
        max_length: ``llm.max_length`` (kept for reference; truncation happens after splicing, where the
            number of 3D tokens is known).
        use_chat_template: wrap prompts with the tokenizer's chat template when it has one.
    """

    def __init__(self, tokenizer, max_length: int | None = None, use_chat_template: bool = False) -> None:
        vocab = tokenizer.get_vocab()
        missing = [t for t in (TOKEN_3D, TOKEN_GROUND) if t not in vocab]
        if missing:
            raise ValueError(f"VidLLMProcessor: the tokenizer lacks the special tokens {missing}")
        if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
            raise ValueError("VidLLMProcessor: the tokenizer needs a pad and an eos token")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.use_chat_template = use_chat_template
        self.token_3d_id = tokenizer.convert_tokens_to_ids(TOKEN_3D)
        self.token_ground_id = tokenizer.convert_tokens_to_ids(TOKEN_GROUND)
        self.pad_token_id = tokenizer.pad_token_id

    # ------------------------------------------------------------------ rendering
    def format_prompt(self, user_text: str) -> str:
        """Wrap a user prompt with the tokenizer's chat template when configured and available."""
        if self.use_chat_template and getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True
            )
        return user_text

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of one user prompt (chat template, BOS; at most one ``<3d>``)."""
        ids = self.tokenizer(self.format_prompt(prompt), add_special_tokens=False)["input_ids"]
        bos = self.tokenizer.bos_token_id
        if bos is not None and not (ids and ids[0] == bos) and not getattr(self.tokenizer, "chat_template", None):
            ids = [bos] + ids
        if ids.count(self.token_3d_id) > 1:
            raise ValueError(
                f"prompt holds {ids.count(self.token_3d_id)} '{TOKEN_3D}' placeholders; expected at most one: {prompt!r}"
            )
        return ids

    def answer_ids(self, answer: str) -> list[int]:
        """Token ids of one answer plus EOS."""
        return self.tokenizer(answer, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]

    # ------------------------------------------------------------------ encoding
    def __call__(self, prompts: Sequence[str], answers: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Tokenise B rendered prompts (and answers for teacher forcing) into right-padded tensors.

        Returns (CPU tensors, ``T`` = longest prompt + answer, ``Q`` = longest prompt without ``<3d>``, at least 1):
            ``input_ids [B, T]`` long: prompt ids (``<3d>`` included) then answer ids + EOS, pad after;
            ``attention_mask [B, T]`` long: 1 on the tokens;
            ``labels [B, T]`` long: the answer ids, −100 on the prompt, padding, and right after a ``<ground>`` token
            (the ``<ground>`` state is the grounding query; its next-token target would pull it to a constant);
            ``prompt_length [B]`` long: prompt tokens (``<3d>`` included); the answer starts there;
            ``placeholder [B]`` long: position of ``<3d>`` in the prompt, −1 when absent;
            ``question_ids [B, Q]``, ``question_mask [B, Q]`` bool: the prompt without ``<3d>`` (the readout's question).
        """
        prompts = list(prompts)
        if answers is not None and len(answers) != len(prompts):
            raise ValueError(f"VidLLMProcessor: {len(prompts)} prompts but {len(answers)} answers")
        p_ids = [self.prompt_ids(p) for p in prompts]
        a_ids = [self.answer_ids(a) for a in answers] if answers is not None else [[] for _ in prompts]
        bsz = len(prompts)
        length = max((len(p) + len(a) for p, a in zip(p_ids, a_ids)), default=0)
        q_rows = [[t for t in p if t != self.token_3d_id] for p in p_ids]
        q_len = max(max((len(q) for q in q_rows), default=1), 1)
        out = {
            "input_ids": torch.full((bsz, length), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros(bsz, length, dtype=torch.long),
            "labels": torch.full((bsz, length), -100, dtype=torch.long),
            "prompt_length": torch.tensor([len(p) for p in p_ids], dtype=torch.long),
            "placeholder": torch.tensor(
                [p.index(self.token_3d_id) if self.token_3d_id in p else -1 for p in p_ids], dtype=torch.long
            ),
            "question_ids": torch.full((bsz, q_len), self.pad_token_id, dtype=torch.long),
            "question_mask": torch.zeros(bsz, q_len, dtype=torch.bool),
        }
        for b, (p, a, q) in enumerate(zip(p_ids, a_ids, q_rows)):  # per sample: text lengths differ
            n_p, n = len(p), len(p) + len(a)
            a_t = torch.tensor(a, dtype=torch.long)
            out["input_ids"][b, :n] = torch.tensor(p + a, dtype=torch.long)
            out["attention_mask"][b, :n] = 1
            after_ground = torch.zeros(len(a), dtype=torch.bool)
            after_ground[1:] = a_t[:-1] == self.token_ground_id
            out["labels"][b, n_p:n] = a_t.masked_fill(after_ground, -100)
            out["question_ids"][b, : len(q)] = torch.tensor(q, dtype=torch.long)
            out["question_mask"][b, : len(q)] = True
        return out

    def encode_records(self, records: Sequence[Mapping]) -> dict[str, Tensor]:
        """Render (:func:`render_record`) and tokenise text records with their answers (training)."""
        pairs = [render_record(r) for r in records]
        return self([p for p, _ in pairs], [a for _, a in pairs])

    def questions(self, questions: Sequence[str], situations: Sequence[str | None] | None = None) -> dict[str, Tensor]:
        """Render QA prompts (SQA3D-style where a situation is given) and tokenise them for generation."""
        situations = list(situations) if situations is not None else [None] * len(questions)
        return self(
            [
                render_prompt("sqa", q, situation=s) if s else render_prompt("qa", q)
                for q, s in zip(questions, situations)
            ]
        )

    def grounding(self, descriptions: Sequence[str]) -> dict[str, Tensor]:
        """Render grounding prompts and tokenise them with the forced answer ``<ground>``."""
        return self(
            [render_prompt("ground", description=d) for d in descriptions], [GROUNDING_ANSWER] * len(descriptions)
        )
