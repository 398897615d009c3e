"""Stage 2 runs the model through its one forward (``VidLLM.forward``), never a chain of its own."""

from __future__ import annotations

import torch

from tests.helpers import micro_config
from vidllm.data.datamodule import collate_clips
from vidllm.data.dataset import VidLLMDataset
from vidllm.modeling_outputs import VidLLMOutput
from vidllm.training.module import VidLLMModule, vl_batch_from_batch


def _batch(cfg, tasks):
    dataset = VidLLMDataset(cfg.data, "train", tasks=["recon", "qa", "grounding", "caption"])
    first = {}
    for i, (task, _) in enumerate(dataset.samples):
        first.setdefault(task, i)
    return collate_clips([dataset[first[t]] for t in tasks])


def _spy(module, monkeypatch):
    calls, encodes = [], []
    forward, encode = module.model.forward, module.model.encode_streams

    def spy_forward(*args, **kwargs):
        out = forward(*args, **kwargs)
        calls.append((args, kwargs, out))
        return out

    monkeypatch.setattr(module.model, "forward", spy_forward)
    monkeypatch.setattr(module.model, "encode_streams", lambda *a, **k: encodes.append(1) or encode(*a, **k))
    return calls, encodes


def test_stage2_losses_go_through_model_forward(synthetic_root, tokenizer, monkeypatch):
    cfg = micro_config(**{"data.root": str(synthetic_root), "train.stage": 2})
    torch.manual_seed(0)
    module = VidLLMModule(cfg, tokenizer)
    batch = _batch(cfg, ["recon", "qa", "grounding"])
    calls, encodes = _spy(module, monkeypatch)
    losses = module.stage2_losses(batch)
    assert len(calls) == 1 and len(encodes) == 1  # one forward, the clip encoded once
    (images, vl_batch), kwargs, out = calls[0]
    index, expected = vl_batch_from_batch(batch)
    assert images is batch["images"] and vl_batch["prompts"] == expected["prompts"]
    assert kwargs["vl_index"] == index == [1, 2]  # the recon-only row 0 has no VL sample
    assert isinstance(out, VidLLMOutput) and out.vl_index == index
    assert torch.equal(losses["vl/loss"], out.vl["loss"])
    assert torch.equal(losses["loss"], losses["recon/loss"] + out.vl["loss"])


def test_recon_only_batch_runs_forward_without_vl(synthetic_root, tokenizer, monkeypatch):
    cfg = micro_config(**{"data.root": str(synthetic_root), "train.stage": 2})
    torch.manual_seed(0)
    module = VidLLMModule(cfg, tokenizer)
    calls, _ = _spy(module, monkeypatch)
    losses = module.stage2_losses(_batch(cfg, ["recon"]))
    (_, vl_batch), kwargs, out = calls[0]
    assert vl_batch is None and kwargs["vl_index"] is None and out.vl is None and out.t_lang is None
    assert not any(k.startswith("vl/") for k in losses) and torch.isfinite(losses["loss"])


def test_collate_encodes_text_and_losses_match_the_string_path(synthetic_root, tokenizer):
    cfg = micro_config(**{"data.root": str(synthetic_root), "train.stage": 2})
    torch.manual_seed(0)
    module = VidLLMModule(cfg, tokenizer)
    processor = module.model.vl.lm.processor
    dataset = VidLLMDataset(cfg.data, "train", tasks=["recon", "qa", "grounding", "caption"])
    first = {}
    for i, (task, _) in enumerate(dataset.samples):
        first.setdefault(task, i)
    items = [dataset[first[t]] for t in ["recon", "qa", "grounding", "caption"]]
    plain, encoded = collate_clips(items), collate_clips(items, processor=processor)
    assert "vl_text" not in plain and "vl_text" not in collate_clips(
        items[:1], processor=processor
    )  # recon only: no text
    _, strings = vl_batch_from_batch(plain)
    want = processor(strings["prompts"], strings["answers"])
    assert sorted(encoded["vl_text"]) == sorted(want) and all(torch.equal(encoded["vl_text"][k], want[k]) for k in want)
    assert vl_batch_from_batch(encoded)[1]["text"] is encoded["vl_text"]
    module.eval()
    with torch.no_grad():
        a, b = module.stage2_losses(encoded), module.stage2_losses(plain)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_module_gives_the_datamodule_its_processor(synthetic_root, tokenizer):
    from types import SimpleNamespace

    from vidllm.data.datamodule import VidLLMDataModule

    cfg = micro_config(**{"data.root": str(synthetic_root), "train.stage": 2})
    module = VidLLMModule(cfg, tokenizer)
    dm = VidLLMDataModule(cfg.data)
    module._trainer = SimpleNamespace(datamodule=dm)
    module.setup("fit")
    assert dm.processor is module.model.vl.lm.processor
    assert dm._loader(VidLLMDataset(cfg.data, "train")).collate_fn.keywords["processor"] is dm.processor
