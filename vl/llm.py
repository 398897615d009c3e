"""LLM wrapper: a transformers causal LM fed with text and 3D tokens.

* Loads any causal LM + tokenizer from a local directory (``AutoModelForCausalLM`` /
  ``AutoTokenizer``, ``trust_remote_code=False``, ``local_files_only=True``), or builds a fresh
  Qwen2-architecture LM from the :class:`~vl.config.LLMConfig` sizes when ``path`` is None (a
  tokenizer must then be given, e.g. from :func:`vl.tokenizer.build_word_tokenizer`).
* Adds the special tokens ``<3d>`` and ``<ground>`` (resizing the embeddings when needed).
* Projects 3D tokens to the LLM width (MLP) and splices them in place of ``<3d>``: a sample with
  ``n`` valid 3D tokens gets exactly ``n`` embeddings there (variable count → padded + masked).
  Optional ``extra`` query embeddings ``[B, K, H]`` (already at the LLM width, e.g. the GeoVR-style
  camera / scale tokens of :mod:`vl.geo_aux`) follow the 3D tokens; their ``visual_index`` is
  ``M + k`` (``M`` = 3D-token slots). Without ``<3d>`` in a prompt they end the prompt.
* Labels cover only the answer span (answer tokens + EOS); the LM loss is computed only at those
  positions (the vocabulary projection is never applied to the whole sequence).
* Greedy batched generation with left padding and explicit position ids, KV cache.
* Fine-tuning: LoRA via peft on ``lora_target_modules``, full, or frozen.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

from vl.config import GROUND_QUERIES, LLMConfig
from vl.processing import VidLLMProcessor, is_encoded
from vl.query_pool import DescriptionAttentionPool
from vl.tokenizer import TOKEN_3D, TOKEN_GROUND, load_tokenizer

__all__ = ["LanguageModel", "build_projector", "build_tiny_causal_lm"]

_log = logging.getLogger(__name__)
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}


def build_projector(in_dim: int, out_dim: int, num_layers: int = 2) -> nn.Sequential:
    """MLP projector ``in_dim → out_dim`` with ``num_layers`` Linear layers (GELU between)."""
    if num_layers < 1:
        raise ValueError(f"vl.projector_layers must be >= 1, got {num_layers}")
    layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
    for _ in range(num_layers - 1):
        layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
    return nn.Sequential(*layers)


def build_tiny_causal_lm(cfg: LLMConfig, tokenizer) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2-architecture causal LM with the sizes of ``cfg``."""
    if cfg.hidden_size % cfg.num_heads or cfg.num_heads % cfg.num_kv_heads:
        raise ValueError(
            f"llm.hidden_size ({cfg.hidden_size}) must be divisible by llm.num_heads ({cfg.num_heads}), "
            f"and num_heads by llm.num_kv_heads ({cfg.num_kv_heads})"
        )
    config = Qwen2Config(
        vocab_size=max(cfg.vocab_size or 0, len(tokenizer)),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=max(cfg.max_length + cfg.max_new_tokens, 128),
        tie_word_embeddings=cfg.tie_word_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return Qwen2ForCausalLM(config)


class LanguageModel(nn.Module):
    """Causal LM + tokenizer + 3D-token projector.

    Args:
        cfg: the LLM config.
        vision_dim: width C of the 3D tokens fed to the projector.
        projector_layers: depth of the projector MLP.
        ground_query: how the prompt enters the grounding query (``vl.grounding.query``): 'state'
            (mean last-layer prompt state) or 'attention' (:class:`vl.query_pool.DescriptionAttentionPool`).
        tokenizer: required when ``cfg.path`` is None; otherwise loaded from
            ``cfg.tokenizer_path`` or ``cfg.path`` unless given.
    """

    def __init__(
        self, cfg: LLMConfig, vision_dim: int, projector_layers: int = 2, tokenizer=None, ground_query: str = "state"
    ) -> None:
        super().__init__()
        if ground_query not in GROUND_QUERIES:
            raise ValueError(f"vl.grounding.query = {ground_query!r}; expected one of {list(GROUND_QUERIES)}")
        self.cfg = cfg
        if tokenizer is None:
            tok_dir = cfg.tokenizer_path or cfg.path
            if tok_dir is None:
                raise ValueError("llm.path is None: a tokenizer must be given (e.g. vl.tokenizer.build_word_tokenizer)")
            tokenizer = load_tokenizer(tok_dir)
        self.tokenizer = tokenizer
        self._add_special_tokens()
        if cfg.path is not None:
            if not Path(cfg.path).is_dir():
                raise ValueError(f"llm.path = {cfg.path!r} is not a directory")
            model = AutoModelForCausalLM.from_pretrained(
                cfg.path, trust_remote_code=False, local_files_only=True, dtype=_DTYPES[cfg.dtype]
            )
        else:
            model = build_tiny_causal_lm(cfg, tokenizer)
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        self.hidden_size = model.get_input_embeddings().embedding_dim
        self.model = self._apply_finetune_mode(model)
        self.projector = build_projector(vision_dim, self.hidden_size, projector_layers)
        self.processor = VidLLMProcessor(tokenizer, cfg.max_length, cfg.use_chat_template)
        """Prompt rendering and tokenisation (:class:`vl.processing.VidLLMProcessor`); callers encode text with it."""
        self.token_3d_id = tokenizer.convert_tokens_to_ids(TOKEN_3D)
        self.token_ground_id = tokenizer.convert_tokens_to_ids(TOKEN_GROUND)
        # built only when selected, so the default model's state dict is unchanged
        self.query_pool = DescriptionAttentionPool(self.hidden_size) if ground_query == "attention" else None
        self.embed_scale = float(self.hidden_size) ** 0.5 if cfg.embed_scale else 1.0

    # ------------------------------------------------------------------ setup
    def _add_special_tokens(self) -> None:
        tok = self.tokenizer
        vocab = tok.get_vocab()
        missing = [t for t in (TOKEN_3D, TOKEN_GROUND) if t not in vocab]
        if missing:
            tok.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
        if tok.pad_token is None:
            if tok.eos_token is None:
                raise ValueError("tokenizer has neither a pad nor an eos token")
            tok.pad_token = tok.eos_token
        if tok.eos_token is None:
            raise ValueError("tokenizer has no eos token (needed to end answers)")

    def _apply_finetune_mode(self, model: nn.Module) -> nn.Module:
        mode = self.cfg.finetune
        if mode == "full":
            return model
        if mode == "frozen":
            model.requires_grad_(False)
            return model
        from peft import LoraConfig, get_peft_model

        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        unknown = [m for m in self.cfg.lora_target_modules if m not in names]
        if unknown:
            raise ValueError(
                f"llm.lora_target_modules {unknown} not found in the LLM (module names end with e.g. {sorted(names)[:12]})"
            )
        lora = LoraConfig(
            r=self.cfg.lora_r,
            lora_alpha=self.cfg.lora_alpha,
            lora_dropout=self.cfg.lora_dropout,
            target_modules=list(self.cfg.lora_target_modules),
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, lora)

    @property
    def base_model(self) -> nn.Module:
        """The underlying transformers causal LM (inside the peft wrapper when LoRA is on)."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    # ------------------------------------------------------------------ text
    def encode_text(self, prompts, answers: list[str] | None = None) -> dict[str, Tensor]:
        """The processor output for ``prompts``: returned as is when already encoded; B strings (and answers) are
        tokenised here by :attr:`processor` — the compatibility path for callers that still pass raw strings
        (training, the API and the evaluation predictor pass encoded text, so no forward of theirs tokenises)."""
        if is_encoded(prompts):
            if answers is not None:
                raise ValueError("llm: answers are given with already encoded text (encode them with the prompts)")
            return prompts
        return self.processor(list(prompts), None if answers is None else list(answers))

    def build_inputs(
        self,
        visual: Tensor,
        visual_mask: Tensor,
        prompts,
        answers: list[str] | None = None,
        left_pad: bool = False,
        num_extra: int = 0,
        extra_at_end: bool = False,
    ) -> dict[str, Tensor]:
        """Splice the 3D tokens (and K query tokens) into the encoded text; pad to a common length.

        Args:
            visual: ``[B, M, C]`` 3D tokens (before the projector); visual_mask: ``[B, M]`` bool.
            prompts: the processor output (:meth:`vl.processing.VidLLMProcessor.__call__`) of B prompts (with their
                answers for training), or B prompt strings with ``answers`` (B strings, training; None for generation):
                the compatibility path, tokenised here by :meth:`encode_text`.
            left_pad: pad on the left (generation) instead of the right.
            num_extra: K query tokens placed right after the 3D tokens (indices ``M .. M+K−1``), or with
                ``extra_at_end`` (or without ``<3d>`` in the prompt) at the end of the prompt, right before the answer.
        Returns:
            ``input_ids [B, L]`` (pad where 3D tokens go), ``visual_index [B, L]`` (−1 = text,
            ``M + k`` = extra query k),
            ``labels [B, L]`` (−100 outside answers and right after a ``<ground>`` token), ``attention_mask [B, L]``,
            ``prompt_mask [B, L]`` (the prompt's text tokens), ``position_ids [B, L]``.
        Sample b holds as many 3D tokens as ``visual_mask[b]`` has valid entries; answers longer than
        ``llm.max_length`` allows are truncated (a warning); a prompt that does not fit is an error.
        """
        text = self.encode_text(prompts, answers)
        device = visual.device
        ids = text["input_ids"].to(device)
        bsz, t_len = ids.shape
        if visual.shape[0] != bsz or visual_mask.shape != visual.shape[:2]:
            raise ValueError(
                f"llm: batch mismatch: {bsz} prompts, visual {tuple(visual.shape)}, visual_mask {tuple(visual_mask.shape)}"
            )
        labels = text["labels"].to(device)
        n_text = text["attention_mask"].to(device).sum(1)
        p_len = text["prompt_length"].to(device)
        ph = text["placeholder"].to(device)
        m, k_extra = visual.shape[1], num_extra
        has = ph >= 0
        n3d = torch.where(has, visual_mask.sum(1), 0)
        queries_last = has.logical_not() | extra_at_end  # without <3d> the queries end the prompt
        cut = torch.where(has, ph, p_len)  # the 3D tokens replace <3d>; without it, none
        shift = torch.where(has, n3d - 1, 0)
        full = n_text + shift + k_extra  # spliced length of each sample
        prompt_out = p_len + shift + k_extra  # its prompt (3D tokens and queries included)
        max_len = self.cfg.max_length
        full_l, prompt_l = full.tolist(), prompt_out.tolist()  # the one host sync: the padded length
        for b in range(bsz):
            if full_l[b] > max_len:
                if prompt_l[b] >= max_len:
                    raise ValueError(
                        f"llm: prompt of sample {b} is {prompt_l[b]} tokens (3D tokens included) > llm.max_length = "
                        f"{max_len}; raise llm.max_length or lower vl.max_3d_tokens"
                    )
                _log.warning("llm: answer of sample %d truncated to fit llm.max_length = %d", b, max_len)
        kept = full.clamp_max(max_len)
        length = max([min(n, max_len) for n in full_l], default=0)
        # output positions (right padding); writes past llm.max_length go to a dropped column `length`
        j = torch.arange(t_len, device=device)[None]
        after_ph = (j > cut[:, None]) & (j < p_len[:, None])
        in_answer = j >= p_len[:, None]
        text_pos = (
            j
            + after_ph * (shift + queries_last.logical_not() * k_extra)[:, None]
            + in_answer * (shift + k_extra)[:, None]
        )
        text_ok = (j < n_text[:, None]) & ~(has[:, None] & (j == cut[:, None])) & (text_pos < max_len)
        text_pos = torch.where(text_ok, text_pos, length)
        rank = visual_mask.long().cumsum(1) - 1
        vis_ok = visual_mask & has[:, None]
        vis_pos = torch.where(vis_ok, cut[:, None] + rank, length)
        kk = torch.arange(k_extra, device=device)[None]
        ext_pos = torch.where(queries_last, p_len + shift, cut + n3d)[:, None] + kk
        pad_id = self.tokenizer.pad_token_id

        def canvas(fill, dtype):
            return torch.full((bsz, length + 1), fill, dtype=dtype, device=device)

        out = {
            "input_ids": canvas(pad_id, torch.long).scatter_(1, text_pos, ids)[:, :length],
            "visual_index": (
                canvas(-1, torch.long)
                .scatter_(1, vis_pos, torch.arange(m, device=device).expand(bsz, m).contiguous())
                .scatter_(1, ext_pos, (m + kk).expand(bsz, k_extra).contiguous())[:, :length]
            ),
            "labels": canvas(-100, torch.long).scatter_(1, text_pos, labels)[:, :length],
            "prompt_mask": canvas(False, torch.bool).scatter_(
                1, text_pos, (j < p_len[:, None]).expand(bsz, t_len).contiguous()
            )[:, :length],
        }
        pos = torch.arange(length, device=device)[None]
        out["attention_mask"] = (pos < kept[:, None]).long()
        if left_pad:  # shift each row right by its padding: right[b, (i - pad_b) mod L]
            src = (pos - (length - kept)[:, None]) % max(length, 1)
            out = {key: v.gather(1, src) for key, v in out.items()}
        out["position_ids"] = (out["attention_mask"].cumsum(-1) - 1).clamp_min(0)
        return out

    def question_states(self, prompts, device) -> tuple[Tensor, Tensor]:
        """Last-layer states of the prompts' text alone (``<3d>`` removed, no 3D tokens): ``[B, T, H]`` and
        mask ``[B, T]`` bool (right padding). Used by :class:`vl.readout.QuestionReadout`. ``prompts``: the
        processor output (its ``question_ids`` / ``question_mask``) or B strings (compatibility path)."""
        text = self.encode_text(prompts)
        input_ids, mask = text["question_ids"].to(device), text["question_mask"].to(device)
        position_ids = (mask.long().cumsum(-1) - 1).clamp_min(0)
        states = self._hidden_states(self.embed_tokens(input_ids), mask.long(), position_ids)
        return states, mask

    def embed_tokens(self, ids: Tensor) -> Tensor:
        """Text token embeddings ``[..., H]`` of ``ids``, times √H with ``llm.embed_scale``."""
        emb = self.model.get_input_embeddings()(ids)
        return emb * self.embed_scale if self.embed_scale != 1.0 else emb

    def embed(self, visual: Tensor, inputs: dict[str, Tensor], extra: Tensor | None = None) -> Tensor:
        """Input embeddings ``[B, L, H]``: token embeddings with projected 3D tokens (and ``extra [B, K, H]``) spliced in."""
        emb = self.embed_tokens(inputs["input_ids"])
        vis = self.projector(visual.to(self.projector[0].weight.dtype)).to(emb.dtype)  # [B, M, H]
        if extra is not None:
            vis = torch.cat([vis, extra.to(emb.dtype)], dim=1)
        idx = inputs["visual_index"]
        gathered = vis[torch.arange(vis.shape[0], device=vis.device)[:, None], idx.clamp_min(0)]
        return torch.where((idx >= 0)[..., None], gathered, emb)

    # ------------------------------------------------------------------ training forward
    def forward(
        self,
        visual: Tensor,
        visual_mask: Tensor,
        prompts,
        answers: list[str] | None = None,
        extra: Tensor | None = None,
        output_hidden_states: bool = False,
        extra_at_end: bool = False,
    ) -> dict[str, Tensor]:
        """Teacher-forced pass.

        Args:
            visual: ``[B, M, C]`` 3D tokens; visual_mask ``[B, M]``; prompts: the processor output of B prompts
                with their answers (:meth:`vl.processing.VidLLMProcessor.__call__`), or B prompt strings with
                ``answers`` (B strings; the compatibility path, tokenised here, see :meth:`encode_text`).
            extra: optional query embeddings ``[B, K, H]`` placed after the 3D tokens (``extra_at_end``: at
                the end of the prompt, right before the answer).
            output_hidden_states: also return ``hidden_states`` (the stack: index 0 = input
                embeddings, ``l`` = output of decoder layer ``l``, the last after the final norm).
        Returns:
            ``lm_loss`` (mean CE over answer tokens; 0 when there are none), ``answer_logits``
            ``[T, V]`` at the T predicted positions, ``ground_state [B, H]`` (last-layer hidden
            state at the first ``<ground>`` token of each answer plus the mean last-layer state of
            the prompt's text tokens, or their attention pooling with ``ground_query='attention'``; zeros where absent),
            ``has_ground [B]`` bool, ``hidden [B, L, H]`` and the built ``inputs``.
        """
        inputs = self.build_inputs(
            visual,
            visual_mask,
            prompts,
            answers,
            left_pad=False,
            num_extra=0 if extra is None else extra.shape[1],
            extra_at_end=extra_at_end,
        )
        embeds = self.embed(visual, inputs, extra)
        states = self._hidden_states(embeds, inputs["attention_mask"], inputs["position_ids"], output_hidden_states)
        hidden = states[-1] if output_hidden_states else states
        labels = inputs["labels"]
        target = labels[:, 1:]
        sel = target != -100
        head = self.base_model.get_output_embeddings()
        answer_logits = head(hidden[:, :-1][sel]).float()
        if answer_logits.shape[0]:
            lm_loss = F.cross_entropy(answer_logits, target[sel])
        else:
            lm_loss = hidden.sum() * 0.0
        is_ground = (inputs["input_ids"] == self.token_ground_id) & (labels != -100)
        has_ground = is_ground.any(-1)
        first = is_ground.float().argmax(-1)
        if self.query_pool is not None:
            prompt_state = self.query_pool(hidden, embeds, inputs["prompt_mask"])
        else:
            pm = inputs["prompt_mask"][..., None].to(hidden.dtype)
            prompt_state = (hidden * pm).sum(1) / pm.sum(1).clamp_min(1)
        # the grounding query: the <ground> state plus the mean state of the prompt's words, so the
        # description reaches the heads directly even when a small LM's <ground> state is generic
        ground_state = (hidden[torch.arange(hidden.shape[0], device=hidden.device), first] + prompt_state) * has_ground[
            :, None
        ].to(hidden.dtype)
        out = {
            "lm_loss": lm_loss,
            "answer_logits": answer_logits,
            "ground_state": ground_state,
            "has_ground": has_ground,
            "hidden": hidden,
            "inputs": inputs,
        }
        if output_hidden_states:
            out["hidden_states"] = states
        return out

    def _hidden_states(
        self, embeds: Tensor, attention_mask: Tensor, position_ids: Tensor, all_layers: bool = False
    ) -> Tensor | tuple[Tensor, ...]:
        """Last-layer hidden states ``[B, L, H]`` (after the final norm) from the LM's decoder stack,
        or with ``all_layers`` the whole stack (``num_layers + 1`` tensors, see :meth:`forward`)."""
        base = self.base_model
        decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
        if decoder is not None and decoder is not base:
            out = decoder(
                inputs_embeds=embeds,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=False,
                output_hidden_states=all_layers,
            )
            if all_layers:
                states = tuple(out.hidden_states)
                return states[:-1] + (out.last_hidden_state,)
            return out.last_hidden_state
        out = self.model(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
            output_hidden_states=True,
            logits_to_keep=1,
        )
        return tuple(out.hidden_states) if all_layers else out.hidden_states[-1]

    @property
    def num_layers(self) -> int:
        """Decoder layers of the LLM."""
        return int(self.base_model.config.num_hidden_layers)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(
        self,
        visual: Tensor,
        visual_mask: Tensor,
        prompts,
        max_new_tokens: int | None = None,
        extra: Tensor | None = None,
        extra_at_end: bool = False,
    ) -> dict:
        """Greedy decoding of a batch (left-padded, KV cache); ``prompts`` (processor output without answers, or
        B strings: the compatibility path) and ``extra`` as in :meth:`forward`. Control
        tokens (:meth:`suppressed_token_ids`) are never generated.

        Returns:
            ``text`` (B strings, special tokens removed) and ``token_ids [B, T]`` (pad after EOS).
        """
        max_new = max_new_tokens or self.cfg.max_new_tokens
        inputs = self.build_inputs(
            visual,
            visual_mask,
            prompts,
            None,
            left_pad=True,
            num_extra=0 if extra is None else extra.shape[1],
            extra_at_end=extra_at_end,
        )
        embeds = self.embed(visual, inputs, extra)
        mask = inputs["attention_mask"]
        pos = inputs["position_ids"]
        pad = self.tokenizer.pad_token_id
        stop = torch.tensor(sorted(self.stop_token_ids()), device=embeds.device)
        suppressed = torch.tensor(
            sorted(self.suppressed_token_ids() - set(stop.tolist())), dtype=torch.long, device=embeds.device
        )
        bsz = embeds.shape[0]
        done = torch.zeros(bsz, dtype=torch.bool, device=embeds.device)
        past = None
        tokens = []
        for _ in range(max_new):  # one step per generated token (inherent to autoregression)
            out = self.model(
                inputs_embeds=embeds,
                attention_mask=mask,
                position_ids=pos,
                past_key_values=past,
                use_cache=True,
                logits_to_keep=1,
            )
            past = out.past_key_values
            logits = out.logits[:, -1].float()
            logits[:, suppressed] = float("-inf")  # control tokens are never text
            nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            tokens.append(nxt)
            done = done | torch.isin(nxt, stop)
            if bool(done.all()):
                break
            embeds = self.embed_tokens(nxt)[:, None]
            mask = torch.cat([mask, torch.ones(bsz, 1, dtype=mask.dtype, device=mask.device)], dim=1)
            pos = pos[:, -1:] + 1
        ids = torch.stack(tokens, dim=1) if tokens else torch.zeros(bsz, 0, dtype=torch.long, device=embeds.device)
        stops = set(stop.tolist())
        text = [
            self.tokenizer.decode(self._strip(row, stops, pad), skip_special_tokens=True).strip()
            for row in ids.tolist()
        ]
        return {"text": text, "token_ids": ids}

    def suppressed_token_ids(self) -> set[int]:
        """Tokens greedy decoding never emits: the ``<3d>`` / ``<ground>`` control tokens, padding and
        BOS (grounding prompts get ``<ground>`` as a forced answer, see :meth:`vl.branch.VLBranch.ground`)."""
        ids = {self.token_3d_id, self.token_ground_id, self.tokenizer.pad_token_id, self.tokenizer.bos_token_id}
        return {int(i) for i in ids if i is not None and i >= 0}

    def stop_token_ids(self) -> set[int]:
        """Token ids that end an answer: the tokenizer's EOS and the LM's ``generation_config.eos_token_id`` (int or list)."""
        ids = {self.tokenizer.eos_token_id}
        gen = getattr(self.base_model, "generation_config", None)
        extra = getattr(gen, "eos_token_id", None) if gen is not None else None
        if isinstance(extra, int):
            ids.add(extra)
        elif extra is not None:
            ids.update(int(e) for e in extra)
        return {i for i in ids if i is not None}

    @staticmethod
    def _strip(row: list[int], stops: set[int], pad: int) -> list[int]:
        for i, t in enumerate(row):
            if t in stops:
                row = row[:i]
                break
        return [t for t in row if t != pad]
