import contextlib
import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfpipe.metrics.detection import (
    COCO_STATS,
    ImageBoxes,
    coco_metrics,
    detection_agreement,
    iou_matrix,
    match_detections,
    voc_ap,
    voc_metrics,
)

NUM_CLASSES = 3


@st.composite
def box_sets(draw, with_scores: bool):
    n = draw(st.integers(0, 6))
    xy = draw(st.lists(st.tuples(st.floats(0, 200), st.floats(0, 200)), min_size=n, max_size=n))
    wh = draw(st.lists(st.tuples(st.floats(1, 160), st.floats(1, 160)), min_size=n, max_size=n))
    boxes = np.array([[x, y, x + w, y + h] for (x, y), (w, h) in zip(xy, wh, strict=True)], np.float64).reshape(-1, 4)
    classes = np.array(draw(st.lists(st.integers(0, NUM_CLASSES - 1), min_size=n, max_size=n)), np.int64)
    if with_scores:
        scores = np.array(draw(st.lists(st.floats(0.01, 1), min_size=n, max_size=n)), np.float64)
        return ImageBoxes(boxes, classes, scores=scores)
    crowd = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    return ImageBoxes(boxes, classes, iscrowd=crowd)


def reference_cocoeval(tmp_path, ground_truth, predictions) -> list[float]:
    """pycocotools' own path: JSON files written independently, COCO(), loadRes(), COCOeval."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    anns, results = [], []
    for i, gt in enumerate(ground_truth):
        for (x1, y1, x2, y2), c, crowd in zip(gt.boxes, gt.classes, gt.iscrowd, strict=True):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": int(crowd)})
    for i, p in enumerate(predictions):
        for (x1, y1, x2, y2), c, s in zip(p.boxes, p.classes, p.scores, strict=True):
            results.append({"image_id": i + 1, "category_id": int(c) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": s})
    (tmp_path / "gt.json").write_text(json.dumps({
        "images": [{"id": i + 1} for i in range(len(ground_truth))], "annotations": anns,
        "categories": [{"id": c + 1, "name": str(c)} for c in range(NUM_CLASSES)]}, default=float))
    (tmp_path / "dt.json").write_text(json.dumps(results, default=float))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "gt.json"))
        evaluator = COCOeval(gt, gt.loadRes(str(tmp_path / "dt.json")), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return list(evaluator.stats)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 4).flatmap(lambda n: st.tuples(st.lists(box_sets(False), min_size=n, max_size=n),
                                                     st.lists(box_sets(True), min_size=n, max_size=n))))
def test_coco_metrics_equal_cocoeval_on_the_same_json(tmp_path, data):
    ground_truth, predictions = data
    if not any(len(p.classes) for p in predictions):
        return  # COCO.loadRes cannot read an empty result file; covered below
    ours = coco_metrics(ground_truth, predictions, NUM_CLASSES)
    reference = reference_cocoeval(tmp_path, ground_truth, predictions)
    assert list(ours)[: len(COCO_STATS)] == list(COCO_STATS)
    np.testing.assert_allclose([ours[k] for k in COCO_STATS], reference, rtol=0, atol=1e-9)
    # AP is the mean of the per-class APs (over classes with ground truth), and the IoU-0.5 curves
    # average to AP50 over COCOeval's 101 recall points.
    per_class = [ap for ap in ours["per_class_AP"] if ap is not None]
    curves = [c for c in ours["pr_curve_iou50"]["precision"] if c is not None]
    if per_class:
        assert ours["AP"] == pytest.approx(np.mean(per_class), abs=1e-12)
        assert ours["AP50"] == pytest.approx(np.mean(curves), abs=1e-12)
    else:
        assert ours["AP"] == -1 and not curves


def test_coco_metrics_without_any_prediction():
    gt = [ImageBoxes(np.array([[0, 0, 50, 50.0]]), np.array([1]))]
    pred = [ImageBoxes(np.zeros((0, 4)), np.zeros(0, int), scores=np.zeros(0))]
    result = coco_metrics(gt, pred, NUM_CLASSES)
    assert result["AP"] == 0.0 and result["AR100"] == 0.0 and result["APl"] == -1.0


def test_perfect_predictions_score_one():
    boxes = np.array([[10, 10, 60, 80.0], [100, 100, 140, 120]])
    gt = [ImageBoxes(boxes, np.array([0, 2]))]
    pred = [ImageBoxes(boxes, np.array([0, 2]), scores=np.array([0.9, 0.8]))]
    assert coco_metrics(gt, pred, NUM_CLASSES)["AP"] == pytest.approx(1.0)
    assert voc_metrics(gt, pred, NUM_CLASSES)["mAP"] == pytest.approx(1.0)


def test_iou():
    assert iou_matrix(np.array([0, 0, 10, 10]), np.array([[1, 1, 10, 10], [10, 10, 20, 20]])).tolist() == [[0.81, 0.0]]


def voc_case():
    """Class 0: 3 boxes (+1 difficult); detections, by falling score: ignored (difficult), TP, FP
    (duplicate), TP (IoU 0.64), FP. Class 1: one box found exactly. Class 2: no ground truth."""
    gt = [ImageBoxes(np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 40, 10, 50.0]]), np.array([0, 0, 1])),
          ImageBoxes(np.array([[0, 0, 10, 10], [40, 40, 50, 50.0]]), np.array([0, 0]),
                     difficult=np.array([False, True]))]
    pred = [ImageBoxes(np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60], [0, 40, 10, 50.0]]),
                       np.array([0, 0, 0, 1]), scores=np.array([0.9, 0.8, 0.6, 0.5])),
            ImageBoxes(np.array([[2, 2, 10, 10], [40, 40, 50, 50.0]]), np.array([0, 0]),
                       scores=np.array([0.7, 0.95]))]
    return gt, pred


def test_voc_all_point_ap_by_hand():
    # class 0: precision 1, 1/2, 2/3, 1/2 at recall 1/3, 1/3, 2/3, 2/3 -> 1/3 * 1 + 1/3 * 2/3 = 5/9
    result = voc_metrics(*voc_case(), NUM_CLASSES)
    assert result["per_class_AP"][0] == pytest.approx(5 / 9)
    assert result["per_class_AP"][1] == pytest.approx(1.0) and result["per_class_AP"][2] is None
    assert result["mAP"] == pytest.approx((5 / 9 + 1) / 2)
    # At IoU 0.7 the 0.64 match becomes a false positive: only the first detection is right.
    assert voc_metrics(*voc_case(), NUM_CLASSES, iou_threshold=0.7)["per_class_AP"][0] == pytest.approx(1 / 3)


def test_voc07_eleven_point_ap_by_hand():
    # recall thresholds 0..0.3 -> 1, 0.4..0.6 -> 2/3, 0.7..1 -> 0: (4 + 3 * 2/3) / 11 = 6/11
    result = voc_metrics(*voc_case(), NUM_CLASSES, eleven_point=True)
    assert result["per_class_AP"][0] == pytest.approx(6 / 11)
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5]), eleven_point=True) == pytest.approx((6 + 5 * 0.5) / 11)
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5]), eleven_point=False) == pytest.approx(0.75)


def dets(boxes, classes, scores):
    return ImageBoxes(np.array(boxes, np.float64).reshape(-1, 4), np.array(classes), scores=np.array(scores, float))


def test_matching_pairs_same_class_boxes_greedily_by_reference_score():
    reference = dets([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]], [0, 1, 2], [0.9, 0.8, 0.7])
    # one box shifted by 1 px (IoU 81/119), one of another class, one of class 2 with low IoU
    other = dets([[1, 0, 11, 10], [20, 20, 30, 30], [5, 5, 15, 15]], [0, 2, 2], [0.6, 0.8, 0.5])
    assert match_detections(reference, other) == [(0, 0)]
    # each other-box is taken once: the higher-scored reference box wins it
    twin = dets([[0, 0, 10, 10], [0, 0, 10, 10]], [0, 0], [0.3, 0.9])
    assert match_detections(twin, dets([[0, 0, 10, 10]], [0], [0.5])) == [(1, 0)]


def test_detection_agreement_by_hand():
    reference = [dets([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 1], [0.9, 0.8]),
                 dets([], [], []),
                 dets([[0, 0, 10, 10]], [0], [0.5])]
    other = [dets([[1, 0, 11, 10], [20, 20, 30, 30]], [0, 1], [0.7, 0.85]),
             dets([], [], []),
             dets([[50, 50, 60, 60]], [0], [0.5])]
    result = detection_agreement(reference, other)
    shifted = 90 / 110  # 10x10 boxes one pixel apart: intersection 90, union 110
    assert result["matched"] == 2 and result["matched_share_reference"] == result["matched_share_other"] == 2 / 3
    assert result["mean_iou"] == pytest.approx((shifted + 1) / 2)
    assert result["mean_abs_score_diff"] == pytest.approx((0.2 + 0.05) / 2)
    assert result["max_abs_score_diff"] == pytest.approx(0.2)
    assert result["per_image"] == pytest.approx([1 - (shifted + 1) / 2, 0.0, 1.0])


def test_pr_curves_and_per_class_ap_name_classes_without_ground_truth():
    gt = [ImageBoxes(np.array([[0, 0, 50, 50.0]]), np.array([1]))]
    pred = [dets([[0, 0, 50, 50]], [1], [0.9])]
    result = coco_metrics(gt, pred, NUM_CLASSES)
    assert result["per_class_AP"] == [None, pytest.approx(1.0), None]
    curve = result["pr_curve_iou50"]
    assert len(curve["recall"]) == 101 and curve["precision"][0] is None
    assert curve["precision"][1] == pytest.approx([1.0] * 101)
