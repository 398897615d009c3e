"""Word-level tokenizer builder: a ``tokenizers`` WordLevel model wrapped as a transformers tokenizer.

Used where no pretrained LLM is available (tests, the CPU demo): the vocabulary is the words of
a corpus (lower-cased, split on whitespace and punctuation), plus ``<pad>``, ``<unk>``, ``<s>``,
``</s>`` and the special tokens ``<3d>`` and ``<ground>``. The result is a
``PreTrainedTokenizerFast`` that saves to / loads from a directory like any HF tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from vl.prompts import template_words
from vl.special_tokens import TOKEN_3D, TOKEN_GROUND

__all__ = ["SPECIAL_TOKENS", "TOKEN_3D", "TOKEN_GROUND", "build_word_tokenizer", "load_tokenizer"]

SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}


def build_word_tokenizer(
    corpus: Iterable[str], save_dir: str | Path | None = None, min_frequency: int = 1
) -> PreTrainedTokenizerFast:
    """Train a word-level tokenizer on ``corpus`` (an iterable of sentences or words).

    Args:
        corpus: texts; every distinct lower-cased word / punctuation mark becomes a token (the
            words of the prompt templates, :func:`vl.prompts.template_words`, are always added).
        save_dir: if given, the tokenizer is saved there (``save_pretrained``).
        min_frequency: words seen fewer times map to ``<unk>``.
    Returns:
        A ``PreTrainedTokenizerFast`` with pad/unk/bos/eos and additional special tokens ``<3d>``,
        ``<ground>``; ``padding_side='right'`` (the LLM wrapper pads on the left for generation).
    """
    specials = list(SPECIAL_TOKENS.values()) + [TOKEN_3D, TOKEN_GROUND]
    tok = Tokenizer(models.WordLevel(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    trainer = trainers.WordLevelTrainer(special_tokens=specials, min_frequency=min_frequency)
    tok.train_from_iterator(list(corpus) + [" ".join(template_words())], trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, additional_special_tokens=[TOKEN_3D, TOKEN_GROUND], **SPECIAL_TOKENS
    )
    if save_dir is not None:
        wrapped.save_pretrained(str(save_dir))
    return wrapped


def load_tokenizer(path: str | Path):
    """Load any tokenizer from a local directory (``AutoTokenizer``, no remote code, no downloads)."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"tokenizer directory {str(path)!r} does not exist")
    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False, local_files_only=True)
