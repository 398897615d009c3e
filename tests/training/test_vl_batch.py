"""vl_batch_from_batch with several questions per clip (data.questions_per_clip)."""

from __future__ import annotations

import torch

from vidllm.config import DataConfig
from vidllm.data.datamodule import collate_clips
from vidllm.data.dataset import VidLLMDataset
from vidllm.data.resumable import draw_key
from vidllm.training.module import vl_batch_from_batch
from vl.branch import VLBranch
from vl.config import LLMConfig, VLConfig

C = 32


def _cfg(root, k):
    return DataConfig(
        root=str(root),
        num_frames=4,
        image_size=56,
        batch_size=2,
        num_workers=0,
        tasks=["recon", "qa", "grounding"],
        task_weights=[1.0, 1.0, 1.0],
        questions_per_clip=k,
    )


def test_k_questions_per_clip_equal_k_separate_samples(synthetic_root, tokenizer):
    train = VidLLMDataset(_cfg(synthetic_root, 3), "train", deterministic=False)
    n = len(train)
    qa = next(i for i, (t, _) in enumerate(train.samples) if t == "qa")
    grounding = next(
        i for i, (t, r) in enumerate(train.samples) if t == "grounding" and r.scene_id != train.samples[qa][1].scene_id
    )
    recon = next(i for i, (t, _) in enumerate(train.samples) if t == "recon")
    keys = [draw_key(qa, 4, n), draw_key(recon, 4, n), draw_key(grounding, 4, n)]
    shared = collate_clips([train[k] for k in keys])
    index, vl_shared = vl_batch_from_batch(shared)
    assert index == [0, 0, 0, 2, 2, 2]  # the recon row brings no text; each VL row its 3 records
    # the same records as separate rows (uniform frames: the same clip for every record of a scene)
    single = VidLLMDataset(_cfg(synthetic_root, 1), "train", deterministic=False)
    rows = []
    for k in (keys[0], keys[2]):
        idx, draw = k % n, k // n
        rows += [draw_key(idx, draw, n)] + [draw_key(o, draw, n) for o in train.same_scene_records(idx, draw)]
    separate = collate_clips([single[k] for k in rows])
    assert "extra_texts" not in separate
    index_sep, vl_sep = vl_batch_from_batch(separate)
    assert index_sep == list(range(6))
    assert vl_shared["prompts"] == vl_sep["prompts"] and vl_shared["answers"] == vl_sep["answers"]
    assert vl_shared["tasks"] == vl_sep["tasks"] and "grounding" in vl_shared["tasks"] and "qa" in vl_shared["tasks"]
    for key in ("target_boxes", "proposals", "proposal_positives", "object_boxes"):
        for a, b in zip(vl_shared[key], vl_sep[key]):
            torch.testing.assert_close(a, b)
    for task, targets, objects in zip(vl_shared["tasks"], vl_shared["target_boxes"], vl_shared["object_boxes"]):
        # every record names its objects (the readout's localisation targets); only grounding has target boxes
        assert len(objects) > 0
        assert len(targets) == (len(objects) if task == "grounding" else 0)
    torch.testing.assert_close(vl_shared["world_from_model"], vl_sep["world_from_model"])
    torch.testing.assert_close(shared["images"][index], separate["images"][index_sep])
    # the VL branch gives the same losses on the shared clip (indexed K times) as on K separate clips
    torch.manual_seed(0)
    branch = VLBranch(
        VLConfig(voxel_size=0.25, max_3d_tokens=64),
        LLMConfig(
            finetune="full",
            hidden_size=32,
            num_layers=1,
            num_heads=2,
            num_kv_heads=1,
            intermediate_size=64,
            max_length=256,
        ),
        C,
        14,
        tokenizer,
    ).eval()
    g = torch.Generator().manual_seed(0)
    b, s, _, h, w = shared["images"].shape
    t_lang = torch.randn(b, s, (h // 14) * (w // 14), C, generator=g)  # one feature grid per clip

    def geometry(batch, idx):
        return {
            "depth": batch["depth"][idx],
            "extrinsic": batch["extrinsics"][idx],
            "intrinsic": batch["intrinsics"][idx],
        }

    out_shared = branch(t_lang[index], geometry(shared, index), vl_shared)
    t_sep = t_lang[[0, 0, 0, 2, 2, 2]]  # the separate rows of each record carry their clip's features
    out_sep = branch(t_sep, geometry(separate, index_sep), vl_sep)
    for key in ("loss", "lm", "proposal", "l1", "giou", "objectness"):
        torch.testing.assert_close(out_shared[key], out_sep[key])
