"""tfpipe.runtime.bundle: one image's outputs decoded as the evaluator does, with boxes and class
maps mapped back through the letterbox to the image's own pixels."""

import json

import numpy as np
import pytest

from tfpipe.errors import TfpipeError
from tfpipe.runtime.bundle import Bundle, describe

SPEC = {"height": 64, "width": 64, "channels": 3, "resize": "letterbox", "scale": 1 / 127.5, "offset": -1.0,
        "channel_order": "rgb", "pad_value": 0.0}


def detection_section(anchors, scales=(10.0, 10.0, 5.0, 5.0), **settings) -> dict:
    return {"anchors": anchors, "box_coding": {"scales": list(scales)}, "score_threshold": 0.1, "nms_iou": 0.5,
            "max_detections": 10, **settings}


def bundle(tmp_path, task: str, **extra) -> Bundle:
    meta = {"format": "tfpipe-bundle/1", "task": task, "classes": ["a", "b", "c"], "preprocess": SPEC,
            "models": {"int8": {"file": "model_int8.tflite"}}, **extra}
    (tmp_path / "model.json").write_text(json.dumps(meta))
    return Bundle(tmp_path)


def test_detections_of_the_op_come_back_in_the_images_pixels(tmp_path):
    b = bundle(tmp_path, "detection")
    outputs = {"detection_boxes": np.array([[[0.25, 0.5, 0.5, 1.0], [0.0, 0.0, 0.1, 0.1]]], np.float32),
               "detection_classes": np.array([[2.0, 0.0]], np.float32),
               "detection_scores": np.array([[0.9, 0.2]], np.float32), "num_detections": np.array([2.0], np.float32)}
    # a 32 x 128 image letterboxes to 16 x 64 at row 24, x2 per pixel: model (x 32..64, y 16..32) -> image
    # (x 64..128, y (16 - 24) * 2 = -16 .. (32 - 24) * 2 = 16)
    p = b.decode(outputs, (32, 128), min_score=0.5)
    assert p.classes == ["c"] and p.scores.tolist() == pytest.approx([0.9])
    np.testing.assert_allclose(p.boxes, [[64.0, -16.0, 128.0, 16.0]])
    assert describe(p, b.classes) == ["1 detection(s)", "  c 0.9000 at x1=64.0 y1=-16.0 x2=128.0 y2=16.0"]


def test_raw_detector_outputs_are_decoded_and_nmsed_on_the_bundles_anchors(tmp_path):
    anchors = [[0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]]
    b = bundle(tmp_path, "detection", detection=detection_section(anchors))
    outputs = {"box_encodings": np.zeros((1, 2, 4), np.float32),
               "class_scores": np.array([[[0.8, 0.0, 0.0], [0.6, 0.0, 0.0]]], np.float32)}
    p = b.decode(outputs, (64, 64))
    assert p.classes == ["a"] and p.scores.tolist() == pytest.approx([0.8])  # the duplicate is suppressed
    np.testing.assert_allclose(p.boxes, [[16.0, 16.0, 48.0, 48.0]], atol=1e-4)


def test_classification_top_k_and_a_segmentation_map_at_the_images_size(tmp_path):
    c = bundle(tmp_path, "classification")
    p = c.decode({"probabilities": np.array([[0.1, 0.7, 0.2]], np.float32)}, (28, 28), top_k=2)
    assert p.top == [("b", pytest.approx(0.7)), ("c", pytest.approx(0.2))]
    s = bundle(tmp_path, "segmentation")
    class_map = np.zeros((1, 64, 64), np.uint8)
    class_map[0, 16:48, 32:] = 2  # the image's right half (the letterbox rows 16..47 hold a 32 x 64 image)
    p = s.decode({"class_map": class_map}, (16, 32))
    assert p.class_map.shape == (16, 32)
    assert (p.class_map[:, 16:] == 2).all() and (p.class_map[:, :16] == 0).all()
    assert describe(p, s.classes) == ["a 50.0%, c 50.0%"]


def test_a_missing_or_broken_bundle_is_named(tmp_path):
    with pytest.raises(TfpipeError, match="model.json: no such file"):
        Bundle(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(TfpipeError, match="model.json: not valid JSON"):
        Bundle(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"task": "detection", "models": {}}))
    with pytest.raises(TfpipeError, match="model.json: not a tfpipe bundle \\(missing classes, preprocess\\)"):
        Bundle(tmp_path)


def test_the_decoding_is_model_jsons_scales_anchors_and_settings(tmp_path):
    """Contract.detections (the evaluator's decoding and the device's) reads every decoding fact from
    model.json: changing one there changes the boxes."""
    outputs = {"box_encodings": np.array([[1.0, 0.0, 0.0, 0.0]], np.float32),
               "class_scores": np.array([[0.5, 0.0, 0.0]], np.float32)}
    anchors = [[0.5, 0.5, 0.25, 0.25]]
    boxes, classes, scores = bundle(tmp_path, "detection", detection=detection_section(anchors)).detections(outputs)
    # x1 y1 x2 y2 in 64 px; ty 1 / scale 10: the centre moves 0.1 anchor heights down (y 0.525 +- 0.125)
    np.testing.assert_allclose(boxes, [[24.0, 25.6, 40.0, 41.6]], atol=1e-4)
    assert classes.tolist() == [0] and scores.tolist() == pytest.approx([0.5])
    boxes, _, _ = bundle(tmp_path, "detection", detection=detection_section(anchors, scales=(1, 10, 5, 5))
                         ).detections(outputs)
    np.testing.assert_allclose(boxes, [[24.0, 40.0, 40.0, 56.0]], atol=1e-4)  # ty / 1: a whole anchor height down
    _, classes, _ = bundle(tmp_path, "detection", detection=detection_section(anchors, score_threshold=0.6)
                           ).detections(outputs)
    assert classes.tolist() == []


@pytest.mark.parametrize("section, message", [
    ({}, "detection: no 'anchors'"),
    ({"anchors": [[0.5, 0.5, 0.1, 0.1]], "score_threshold": 0.1, "nms_iou": 0.5, "max_detections": 5},
     "detection: no 'box_coding'"),
    (detection_section([[0.5, 0.5, 0.1]]), "detection: anchors must be \\[N, 4\\]"),
    (detection_section([[0.5, 0.5, 0.1, 0.1]], score_threshold="high"), "detection: malformed"),
])
def test_a_broken_detection_section_is_named_when_it_is_first_needed(tmp_path, section, message):
    b = bundle(tmp_path, "detection", detection=section)
    raw = {"box_encodings": np.zeros((1, 4), np.float32), "class_scores": np.zeros((1, 3), np.float32)}
    with pytest.raises(TfpipeError, match=f"model.json: {message}"):
        b.detections(raw)
