"""ScanRefer Acc@k and Multi3DRefer F1@k on hand-made boxes (values computed by hand below)."""

import numpy as np
import pytest
import torch

from vidllm.metrics.box_metrics import (
    box_iou,
    box_iou_matrix,
    f1_from_iou_matrix,
    multi3drefer_f1,
    multi3drefer_query_f1,
    scanrefer_accuracy,
)


def _interval_box(lo: float, hi: float) -> list[float]:
    """A box spanning [lo, hi] in x and a unit extent in y and z (so its IoU is the 1-D interval IoU)."""
    return [(lo + hi) / 2, 0.0, 0.0, hi - lo, 1.0, 1.0]


def test_iou_of_offset_cubes():
    unit = [0, 0, 0, 1, 1, 1]
    # shifted by 0.5 along x: inter = 0.5, union = 1.5
    assert box_iou(unit, [0.5, 0, 0, 1, 1, 1]) == pytest.approx(1 / 3)
    # shifted by 0.5 along x and y: inter = 0.25, union = 1.75
    assert box_iou(unit, [0.5, 0.5, 0, 1, 1, 1]) == pytest.approx(1 / 7)
    # unit cube inside a 2-cube: inter = 1, union = 8
    assert box_iou([0, 0, 0, 2, 2, 2], [0.5, 0.5, 0.5, 1, 1, 1]) == pytest.approx(1 / 8)
    # disjoint and identical
    assert box_iou(unit, [3, 0, 0, 1, 1, 1]) == 0.0
    assert box_iou(unit, unit) == pytest.approx(1.0)


def test_iou_accepts_tensors_and_broadcasts():
    pred = torch.tensor([[0, 0, 0, 1, 1, 1], [0.5, 0, 0, 1, 1, 1]], dtype=torch.float32)
    out = box_iou(pred, np.array([0, 0, 0, 1, 1, 1]))
    assert out.shape == (2,) and out.dtype == np.float64
    np.testing.assert_allclose(out, [1.0, 1 / 3])
    mat = box_iou_matrix(pred, [[0, 0, 0, 1, 1, 1], [0.5, 0.5, 0, 1, 1, 1], [5, 5, 5, 1, 1, 1]])
    np.testing.assert_allclose(mat, [[1.0, 1 / 7, 0.0], [1 / 3, 1 / 3, 0.0]])
    assert box_iou_matrix([], [[0, 0, 0, 1, 1, 1]]).shape == (0, 1)
    with pytest.raises(ValueError, match=r"\[\.\.\., 6\]"):
        box_iou([0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1])


def _record(eval_type, iou, i=0):
    return {
        "scene_id": "scene0000_00",
        "object_id": i,
        "ann_id": 0,
        "eval_type": eval_type,
        "pred_box": None,
        "gt_box": [0] * 6,
        "iou": iou,
    }


def test_scanrefer_accuracy_inclusive_with_split_counts():
    records = [
        _record("unique", 0.5, 0),
        _record("unique", 0.25, 1),
        _record("unique", 0.1, 2),
        _record("multiple", 0.6, 3),
        _record("multiple", 0.3, 4),
    ]
    m = scanrefer_accuracy(records)
    # IoU == k counts (inclusive): overall 4/5 at 0.25 (0.5, 0.25, 0.6, 0.3) and 2/5 at 0.5 (0.5, 0.6)
    assert m["overall"] == {"acc@0.25": pytest.approx(0.8), "acc@0.5": pytest.approx(0.4), "count": 5}
    assert m["unique"] == {"acc@0.25": pytest.approx(2 / 3), "acc@0.5": pytest.approx(1 / 3), "count": 3}
    assert m["multiple"] == {"acc@0.25": pytest.approx(1.0), "acc@0.5": pytest.approx(0.5), "count": 2}


def test_scanrefer_recomputes_iou_from_boxes():
    gt = [0, 0, 0, 1, 1, 1]
    records = [
        # the GT cube inside a 2×1×1 box: IoU = 1 / 2 exactly
        {"eval_type": "unique", "pred_box": [0, 0, 0, 2, 1, 1], "gt_box": gt, "iou": 0.0},
        # inside a 4×1×1 box: IoU = 1 / 4 exactly
        {"eval_type": "multiple", "pred_box": [0, 0, 0, 4, 1, 1], "gt_box": gt},
        # no prediction → IoU 0
        {"eval_type": "multiple", "pred_box": None, "gt_box": gt},
    ]
    m = scanrefer_accuracy(records, recompute_iou=True)
    assert m["unique"]["acc@0.5"] == 1.0
    assert m["multiple"]["acc@0.25"] == 0.5 and m["multiple"]["acc@0.5"] == 0.0
    # without recompute the given iou (0.0) of the first record is used
    assert scanrefer_accuracy(records[:1])["unique"]["acc@0.25"] == 0.0


def test_scanrefer_empty_split_and_bad_records():
    m = scanrefer_accuracy([_record("unique", 0.9)])
    assert m["multiple"] == {"acc@0.25": None, "acc@0.5": None, "count": 0}
    with pytest.raises(ValueError, match="eval_type"):
        scanrefer_accuracy([_record("single", 0.9)])
    with pytest.raises(ValueError, match="no field 'eval_type'"):
        scanrefer_accuracy([{"iou": 0.3}])


def _greedy_true_positives(iou: np.ndarray, k: float) -> int:
    """Greedy matching (highest IoU first), only to show that it differs from Hungarian matching."""
    iou = iou.copy()
    tp = 0
    for _ in range(min(iou.shape)):
        i, j = np.unravel_index(np.argmax(iou), iou.shape)
        tp += iou[i, j] >= k
        iou[i, :] = -1
        iou[:, j] = -1
    return tp


def test_f1_hungarian_beats_greedy_on_boxes():
    gts = [_interval_box(0.0, 2.0), _interval_box(1.0, 3.0)]
    preds = [_interval_box(0.4, 2.4), _interval_box(-0.5, 1.5)]
    iou = box_iou_matrix(preds, gts)
    # by hand: A–GT1 = 1.6 / 2.4, A–GT2 = 1.4 / 2.6, B–GT1 = 1.5 / 2.5, B–GT2 = 0.5 / 3.5
    np.testing.assert_allclose(iou, [[2 / 3, 7 / 13], [0.6, 1 / 7]])
    # greedy takes A–GT1 (0.667) and is left with B–GT2 (0.143): one TP at 0.5 → F1 = 2·1 / 4
    assert _greedy_true_positives(iou, 0.5) == 1
    # Hungarian maximises total IoU: A–GT2 + B–GT1 = 1.138 > 0.810 → two TPs → F1 = 1
    assert multi3drefer_query_f1(preds, gts) == {0.25: 1.0, 0.5: 1.0}


def test_f1_from_iou_matrix_hand_cases():
    iou = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert f1_from_iou_matrix(iou, 0.5) == 1.0  # greedy would give 0.5
    # three predictions, one GT matched: F1 = 2·1 / (3 + 1)
    assert f1_from_iou_matrix(np.array([[0.7], [0.2], [0.0]]), 0.5) == pytest.approx(0.5)
    # the matched pair is below the threshold: F1 = 0
    assert f1_from_iou_matrix(np.array([[0.4]]), 0.5) == 0.0
    assert f1_from_iou_matrix(np.array([[0.4]]), 0.25) == 1.0


def test_zero_target_and_empty_predictions():
    assert multi3drefer_query_f1([], []) == {0.25: 1.0, 0.5: 1.0}
    assert multi3drefer_query_f1(None, np.zeros((0, 6))) == {0.25: 1.0, 0.5: 1.0}
    assert multi3drefer_query_f1([[0, 0, 0, 1, 1, 1]], []) == {0.25: 0.0, 0.5: 0.0}
    assert multi3drefer_query_f1([], [[0, 0, 0, 1, 1, 1]]) == {0.25: 0.0, 0.5: 0.0}


def test_multi3drefer_breakdown_by_eval_type():
    box = [0, 0, 0, 1, 1, 1]
    half = [0.5, 0, 0, 1, 1, 1]  # IoU 1/3 with `box`
    records = [
        {"eval_type": "zt_w_d", "pred_boxes": [], "gt_boxes": []},  # 1
        {"eval_type": "zt_wo_d", "pred_boxes": [box], "gt_boxes": []},  # 0
        {"eval_type": "st_w_d", "pred_boxes": [half], "gt_boxes": [box]},  # 1 at 0.25, 0 at 0.5
        {"eval_type": "st_wo_d", "pred_boxes": [box], "gt_boxes": [box]},  # 1
        {"eval_type": "mt", "pred_boxes": [box], "gt_boxes": [box, [5, 5, 5, 1, 1, 1]]},  # 2·1/3
    ]
    m = multi3drefer_f1(records)
    assert m["zt_w_d"]["f1@0.5"] == 1.0 and m["zt_wo_d"]["f1@0.5"] == 0.0
    assert m["st_w_d"] == {"f1@0.25": 1.0, "f1@0.5": 0.0, "count": 1}
    assert m["mt"]["f1@0.5"] == pytest.approx(2 / 3)
    assert m["overall"]["f1@0.25"] == pytest.approx((1 + 0 + 1 + 1 + 2 / 3) / 5)
    assert m["overall"]["f1@0.5"] == pytest.approx((1 + 0 + 0 + 1 + 2 / 3) / 5)
    assert m["overall"]["count"] == 5
    with pytest.raises(ValueError, match="eval_type"):
        multi3drefer_f1([{"eval_type": "unique", "pred_boxes": [], "gt_boxes": []}])
