"""The assembled model: outputs, one-way gradient, weights I/O."""

import pytest
import torch

from tests.helpers import micro_config
from vidllm.model import VidLLM

RECON_ONLY = ("aggregator", "camera_head", "depth_head", "metric_depth")


def test_forward_outputs_and_shapes(tokenizer, clip):
    images, gt, vl_batch = clip
    model = VidLLM(micro_config(), tokenizer)
    out = model(images, vl_batch)
    assert out["pose_enc"].shape == (2, 2, 9)
    for key in ("depth", "depth_conf", "metric_depth", "depth_metric"):
        assert out[key].shape == (2, 2, 56, 70), key
    assert out["extrinsic_metric"].shape == (2, 2, 3, 4) and out["intrinsic"].shape == (2, 2, 3, 3)
    assert out["scale"].shape == (2,) and torch.isfinite(out["scale"]).all()
    # the aligned outputs are the relative ones times the scene scale
    torch.testing.assert_close(out["depth_metric"], out["depth"] * out["scale"].view(2, 1, 1, 1).float())
    losses = model.recon_losses(out, gt)
    assert torch.isfinite(losses["loss"]) and "loss_md" in losses
    assert torch.isfinite(out["vl"]["loss"])


def test_vl_loss_never_reaches_reconstruction_heads(tokenizer, clip):
    images, _, vl_batch = clip
    model = VidLLM(micro_config(), tokenizer)
    out = model(images, vl_batch)
    out["vl"]["loss"].backward()
    for name, module in model.named_children():
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        touched = any(g is not None and g.abs().sum() > 0 for g in grads)
        if name in RECON_ONLY:
            assert not touched, f"VL loss reached {name}"
        elif name in ("encoder", "cta", "vl"):
            assert touched, f"VL loss did not reach {name}"


def test_recon_loss_trains_cta_and_encoder(tokenizer, clip):
    images, gt, _ = clip
    model = VidLLM(micro_config(), tokenizer)
    model.recon_losses(model(images), gt)["loss"].backward()
    for name in ("encoder", "cta", "aggregator", "camera_head", "depth_head", "metric_depth"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(model, name).parameters()), name


def test_save_and_load_pretrained_gives_identical_outputs(tmp_path, tokenizer, clip):
    images, _, vl_batch = clip
    model = VidLLM(micro_config(), tokenizer).eval()
    model.save_pretrained(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {"config.yaml", "model.safetensors", "tokenizer"}
    loaded = VidLLM.from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        a, b = model(images, vl_batch), loaded(images, vl_batch)
    for key in ("pose_enc", "depth", "metric_depth", "depth_metric"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    torch.testing.assert_close(a["vl"]["loss"], b["vl"]["loss"], rtol=0, atol=0)


def test_lora_on_a_local_llm_saves_only_adapters(tmp_path, tokenizer, clip):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    images, _, vl_batch = clip
    llm_dir = tmp_path / "llm"
    lm = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=tokenizer.bos_token_id,
        )
    )
    lm.save_pretrained(llm_dir)
    tokenizer.save_pretrained(llm_dir)
    cfg = micro_config(**{"llm.path": str(llm_dir), "llm.finetune": "lora", "llm.lora_r": 4})
    model = VidLLM(cfg).eval()
    with torch.no_grad():  # make the adapters non-trivial so the round trip is meaningful
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    saved = model.weights_state_dict()
    assert any("lora_A" in k for k in saved)
    assert not any(k.startswith("vl.lm.model.") and "lora_" not in k for k in saved)
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "adapter" / "adapter_config.json").is_file()
    loaded = VidLLM.from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        torch.testing.assert_close(
            model(images, vl_batch)["vl"]["loss"], loaded(images, vl_batch)["vl"]["loss"], rtol=0, atol=0
        )


def test_forward_returns_typed_output_per_mode(tokenizer, clip):
    """VidLLM.forward → VidLLMOutput: reconstruction fields always, VL inputs on request, the VL pass with vl_batch."""
    from vidllm.modeling_outputs import VidLLMOutput

    images, _, vl_batch = clip
    model = VidLLM(micro_config(), tokenizer).eval()
    p, c = (56 // 14) * (70 // 14), model.config.encoder.hidden_size
    with torch.no_grad():
        recon = model(images)
        inputs = model(images, return_vl_inputs=True)
        rows = [1, 1]  # two questions on clip 1, none on clip 0
        full = model(images, vl_batch, vl_index=rows)
    for out in (recon, inputs, full):
        assert isinstance(out, VidLLMOutput)
        assert out.pose_enc.shape == (2, 2, 9) and len(out.pose_enc_list) >= 1
        for name in ("depth", "depth_conf", "metric_depth", "depth_metric"):
            assert getattr(out, name).shape == (2, 2, 56, 70), name
        assert out.extrinsic.shape == out.extrinsic_metric.shape == (2, 2, 3, 4) and out.intrinsic.shape == (2, 2, 3, 3)
        assert out.scale.shape == (2,) and out.frame_scales.shape == (2, 2)
        assert out.geometry_tokens.shape == (2, 2, p, 2 * c)
        assert set(out.streams) >= {"t_base", "t_geom", "t_lang", "intermediates", "grid_hw"}
        assert out.relative_pose_enc is None  # relative pose module off in this config
    # reconstruction only: no VL fields; the mapping view has no key for them
    assert recon.t_lang is recon.vl_geometry is recon.vl is recon.vl_index is None
    assert "vl" not in recon and "t_lang" not in recon.keys() and recon.get("vl") is None
    with pytest.raises(KeyError):
        recon["t_lang"]
    assert recon["depth"] is recon.depth and dict(recon)["scale"] is recon.scale
    # VL inputs: one row per clip, geometry detached
    assert inputs.t_lang.shape == (2, 2, p, c) and inputs.vl is None
    assert set(inputs.vl_geometry) == {"depth", "depth_conf", "extrinsic", "intrinsic"}
    assert not any(v.requires_grad for v in inputs.vl_geometry.values())
    # teacher-forced VL pass on the rows vl_index (t_lang / vl_geometry stay per clip)
    assert full.vl_index == rows and full.t_lang.shape[0] == 2
    assert torch.isfinite(full.vl["loss"]) and full.vl["num_3d_tokens"].shape == (2,)
    with torch.no_grad():
        direct = model.vl(full.t_lang[rows], {k: v[rows] for k, v in full.vl_geometry.items()}, vl_batch)
    assert torch.equal(direct["loss"], full.vl["loss"])
    assert model(images, vl_batch).vl_index == [0, 1]  # default: sample i is clip i
