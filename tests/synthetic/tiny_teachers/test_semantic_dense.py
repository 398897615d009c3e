"""The semantic teacher's dense patch–name term: per-pixel / per-patch object labels and the loss."""

import json

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import micro_config
from vidllm.synthetic.tiny_teachers.scenes import SceneFrames, patch_object_labels, pixel_object_index
from vidllm.synthetic.tiny_teachers.semantic_teacher import _dense_name_loss, build_clip_model, train_semantic_teacher
from vidllm.synthetic.tiny_teachers.teacher_config import TeacherTrainConfig
from vl.tokenizer import build_word_tokenizer

SMALL = {
    "vision_hidden": 16,
    "vision_layers": 1,
    "vision_heads": 2,
    "vision_image_size": 56,
    "text_hidden": 16,
    "text_layers": 1,
    "text_heads": 2,
    "projection_dim": 16,
}


def _plane_scene(boxes: list[list[float]]) -> SceneFrames:
    """One 4×6 frame looking down +z from the origin at a plane 2 m away (identity pose and world frame)."""
    k = torch.tensor([[2.0, 0.0, 3.0], [0.0, 2.0, 2.0], [0.0, 0.0, 1.0]])
    return SceneFrames(
        scene_id="scene0000_00",
        images=torch.rand(1, 3, 4, 6),
        depth=torch.full((1, 4, 6), 2.0),
        extrinsics=torch.eye(4)[:3][None],
        intrinsics=k[None],
        world_from_model=torch.eye(4),
        object_names=[f"red thing{i}" for i in range(len(boxes))],
        object_boxes=torch.tensor(boxes).reshape(-1, 6),
    )


def test_pixel_object_index_matches_a_hand_lift_and_prefers_the_smaller_box():
    # a big box over the right of the plane and a small one inside it; pixel (u, v) lies at x = (u - c_x) / f_x · z = u - 3
    scene = _plane_scene([[1.6, 0.0, 2.0, 3.0, 10.0, 1.0], [1.0, 0.0, 2.0, 0.5, 10.0, 1.0]])
    index = pixel_object_index(scene, margin=0.0)[0]
    for v in range(4):
        for u in range(6):
            x = u - 3.0  # depth 2 / focal 2 = 1 m per pixel
            want = 1 if 0.75 <= x <= 1.25 else 0 if 0.1 <= x <= 3.1 else -1
            assert int(index[v, u]) == want, (u, v, x)
    scene.depth[0, :, 5] = 0.0  # invalid depth: no object
    assert (pixel_object_index(scene, margin=0.0)[0, :, 5] == -1).all()


def test_patch_object_labels_take_the_majority_object_above_the_share():
    index = torch.tensor([[[0, 0, 1, -1], [0, 2, -1, -1], [3, 3, 3, 3], [3, 3, 1, 1]]])
    labels = patch_object_labels(index, (2, 2), min_share=0.5)
    # cells: top-left {0,0,0,2} → 0; top-right {1,-1,-1,-1} → 25 % < 50 % → -1; bottom-left all 3; bottom-right {3,3,1,1} → 50 %
    assert labels.shape == (1, 2, 2)
    assert labels[0, 0, 0] == 0 and labels[0, 0, 1] == -1 and labels[0, 1, 0] == 3
    assert int(labels[0, 1, 1]) in (1, 3)
    assert (patch_object_labels(index, (2, 2), min_share=0.9) == torch.tensor([[[-1, -1], [3, -1]]])).all()


def test_dense_name_loss_is_the_cross_entropy_over_the_batch_names():
    names = ["red chair", "blue chair", "green bed"]
    tokenizer = build_word_tokenizer([f"a {n}" for n in names])
    torch.manual_seed(0)
    model = build_clip_model(TeacherTrainConfig(**SMALL), tokenizer).eval()
    patches = F.normalize(torch.randn(2, 3, 16), dim=-1)
    patch_names = [["green bed", None, "red chair"], [None, "green bed", None]]
    scale = torch.tensor(7.0)
    loss = _dense_name_loss(model, tokenizer, patches, patch_names, scale, 16)
    # independent: encode each candidate caption alone, score each labelled patch, average the NLLs
    candidates = ["green bed", "red chair"]  # the names that label a patch, sorted
    text = []
    for n in candidates:
        tok = tokenizer(
            [f"{tokenizer.bos_token} a {n} {tokenizer.eos_token}"],
            padding="max_length",
            max_length=16,
            return_tensors="pt",
        )
        hidden = model.text_model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).last_hidden_state[0]
        eos = int((tok["input_ids"][0] == tokenizer.eos_token_id).nonzero()[0])
        text.append(F.normalize(model.text_projection(hidden[eos]), dim=-1))
    text = torch.stack(text)
    nll = []
    for (b, p), target in (((0, 0), 0), ((0, 2), 1), ((1, 1), 0)):
        nll.append(-torch.log_softmax(7.0 * text @ patches[b, p], dim=0)[target])
    assert torch.allclose(loss, torch.stack(nll).mean(), atol=1e-5)
    assert _dense_name_loss(model, tokenizer, patches, [[None] * 3, [None] * 3], scale, 16) == 0


def test_dense_term_trains_and_reports_patch_accuracy(tmp_path, synthetic_root):
    tcfg = TeacherTrainConfig(
        semantic_steps=3, semantic_minutes=0, eval_every=100, semantic_batch=8, semantic_dense_weight=1.0, **SMALL
    )
    meta = train_semantic_teacher(synthetic_root, tmp_path / "semantic", micro_config().data.image_size, tcfg)
    assert meta["steps"] == 3 and meta["final_terms"]["dense"] > 0
    held = json.loads((tmp_path / "semantic" / "meta.json").read_text())["held_out"]["trained"]
    assert (
        held["patches"] > 0
        and 0 <= held["patch_category_acc"] <= 1
        and held["patch_name_acc"] <= held["patch_category_acc"]
    )


@pytest.mark.parametrize(
    "field,value",
    [("semantic_dense_weight", -1.0), ("semantic_dense_min_share", 0.0), ("semantic_dense_min_share", 1.5)],
)
def test_dense_settings_are_checked(field, value):
    with pytest.raises(ValueError, match=f"teachers.{field}"):
        TeacherTrainConfig(**{field: value})
