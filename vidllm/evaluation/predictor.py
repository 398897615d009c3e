"""The model as an evaluation predictor: encode a clip once, then answer / ground / caption its queries in batches.

Any object with the same three methods (``prepare``, ``ground``, ``generate``) can stand in for
the model — the tests use an oracle to check the protocols.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vl.grounding_head import boxes_in_model_frame

__all__ = ["ModelPredictor"]


class ModelPredictor:
    """Runs the :class:`vidllm.model.VidLLM` of a :class:`vidllm.api.VidLLMPipeline` on evaluation clips
    (under the pipeline's compute dtype).

    Args:
        pipeline: the pipeline around the model; batch_size: queries per VL forward.
        cache_clips: encoded clips kept (keyed by scene, frame ids and image shape), so that the
            runs of one evaluation (grounding with and without proposals, QA) encode each clip once.
            The model must not change while the predictor is in use.
    """

    def __init__(self, pipeline, batch_size: int = 8, cache_clips: int = 32) -> None:
        self.pipeline = pipeline
        self.model = pipeline.model.eval()
        self.batch_size = max(1, int(batch_size))
        self.cache_clips = max(0, int(cache_clips))
        self._state: dict | None = None
        self._cache: dict[tuple, tuple] = {}

    @property
    def processor(self):
        """The model's :class:`vl.processing.VidLLMProcessor`: queries are rendered and tokenised with it, outside the forward."""
        return self.model.vl.lm.processor

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def prepare(self, clip: dict) -> dict:
        """Encode and reconstruct one clip (``images [S, 3, H, W]``) with one ``VidLLM.forward`` (via ``pipeline.vl_inputs``);
        returns its :class:`~vidllm.modeling_outputs.VidLLMOutput` (batch 1),
        or None when the clip's encoding comes from the cache (only the VL inputs are kept, not the dense outputs)."""
        key = (
            clip.get("scene_id"),
            tuple(clip["frame_ids"].tolist()) if "frame_ids" in clip else None,
            tuple(clip["images"].shape),
        )
        cacheable = self.cache_clips > 0 and key[0] is not None and key[1] is not None
        if cacheable and key in self._cache:
            t_lang, geometry = self._cache[key]
            out = None
        else:
            t_lang, geometry, out = self.pipeline.vl_inputs(clip["images"][None].to(self.device))
            if cacheable:
                if len(self._cache) >= self.cache_clips:
                    self._cache.pop(next(iter(self._cache)))  # oldest first
                self._cache[key] = (t_lang, geometry)
        self._state = {"t_lang": t_lang, "geometry": geometry, "clip": clip}
        return out

    def _chunks(self, n: int):
        for start in range(0, n, self.batch_size):
            yield start, min(n, start + self.batch_size)

    def _inputs(self, n: int) -> tuple[Tensor, dict]:
        st = self._state
        if st is None:
            raise RuntimeError("ModelPredictor: call prepare(clip) before querying")
        return st["t_lang"].expand(n, *st["t_lang"].shape[1:]), {
            k: v.expand(n, *v.shape[1:]) for k, v in st["geometry"].items()
        }

    @torch.no_grad()
    def ground(self, descriptions: list[str], proposals: Tensor | None) -> list[dict]:
        """Boxes for grounding queries on the prepared clip, in the **aligned world** (via the clip's ``world_from_model``).

        Returns per query: ``box [6]`` (chosen proposal or best regressed box), ``boxes [T, 6]`` and
        ``scores [T]`` (all regressed slots with objectness), ``proposal_index`` (−1 none) and
        ``proposal_best`` (the best real proposal, −1 without proposals).
        """
        wfm = self._state["clip"]["world_from_model"].to(self.device)
        results = []
        for a, b in self._chunks(len(descriptions)):
            t_lang, geometry = self._inputs(b - a)
            props = None if proposals is None else [proposals.to(self.device)] * (b - a)
            with self.pipeline.autocast():
                res = self.model.vl.ground(
                    t_lang, geometry, self.processor.grounding(descriptions[a:b]), props, wfm[None].expand(b - a, 4, 4)
                )
            for i in range(b - a):
                results.append(
                    {
                        "box": res["box"][i].float().cpu(),
                        "boxes": res["boxes"][i].float().cpu(),
                        "scores": res["scores"][i].float().cpu(),
                        "proposal_index": int(res["proposal_index"][i]),
                        "proposal_best": int(res["proposal_best"][i]),
                    }
                )
        return results

    @torch.no_grad()
    def generate(self, prompts: list[str], max_new_tokens: int | None = None) -> list[str]:
        """Greedy answers to rendered prompts (see :mod:`vl.prompts`) on the prepared clip."""
        texts: list[str] = []
        for a, b in self._chunks(len(prompts)):
            t_lang, geometry = self._inputs(b - a)
            with self.pipeline.autocast():
                texts += self.model.vl.generate(t_lang, geometry, self.processor(prompts[a:b]), max_new_tokens)
        return texts

    def model_frame_center(self, box_world: Tensor) -> list[float]:
        """Centre of an aligned-world box in the prepared clip's model frame (the caption prompt's location)."""
        wfm = self._state["clip"]["world_from_model"].float()
        return boxes_in_model_frame(box_world.reshape(1, 6).float(), wfm)[0, :3].tolist()
