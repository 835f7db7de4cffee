"""Instance segmentation: the device's mask paste-back and keypoint decoding, the heads' training
targets, keypoints from masks, COCO masks and keypoints in and out, mask and keypoint AP."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfpipe.data.formats import coco
from tfpipe.data.formats.keypoints import GARMENT_KEYPOINTS, flip_order, from_mask
from tfpipe.errors import TfpipeError
from tfpipe.metrics.detection import ImageBoxes, coco_metrics, encode_masks
from tfpipe.runtime import instance


def brute_paste(mask, box, height, width, threshold=0.5):
    """The module docstring's definition, one pixel at a time."""
    size_y, size_x = mask.shape
    x1, y1, x2, y2 = box
    out = np.zeros((height, width), bool)
    for r in range(height):
        for c in range(width):
            x, y = c + 0.5, r + 0.5
            if not (x1 <= x < x2 and y1 <= y < y2):
                continue
            gx = min(max((x - x1) / (x2 - x1) * size_x - 0.5, 0.0), size_x - 1)
            gy = min(max((y - y1) / (y2 - y1) * size_y - 0.5, 0.0), size_y - 1)
            i0, j0 = int(np.floor(gy)), int(np.floor(gx))
            i1, j1 = min(i0 + 1, size_y - 1), min(j0 + 1, size_x - 1)
            wy, wx = gy - i0, gx - j0
            value = ((mask[i0, j0] * (1 - wx) + mask[i0, j1] * wx) * (1 - wy)
                     + (mask[i1, j0] * (1 - wx) + mask[i1, j1] * wx) * wy)
            out[r, c] = value >= threshold
    return out


def test_mask_paste_back_equals_a_brute_force_reference_on_random_boxes():
    rng = np.random.default_rng(0)
    differing = 0
    for _ in range(40):
        mask = rng.uniform(0, 1, (28, 28)).astype(np.float32)
        x1, y1 = rng.uniform(-10, 40, 2)
        box = np.array([x1, y1, x1 + rng.uniform(0.5, 40), y1 + rng.uniform(0.5, 30)])
        got, want = instance.paste_mask(mask, box, 37, 45), brute_paste(mask, box, 37, 45)
        differing += np.count_nonzero(got != want)
    # float32 vs float64 arithmetic may flip a pixel whose sample sits exactly at the threshold
    assert differing <= 2


def test_mask_paste_back_of_a_full_mask_is_the_box_and_nothing_outside():
    pasted = instance.paste_mask(np.ones((28, 28)), np.array([2.0, 3.0, 10.0, 7.0]), 12, 14)
    assert pasted.sum() == 8 * 4 and pasted[3:7, 2:10].all()
    assert not instance.paste_mask(np.ones((28, 28)), np.array([5.0, 5.0, 5.0, 9.0]), 12, 14).any()


def test_keypoint_targets_round_trip_through_the_device_decoding():
    """keypoint_targets' cell, decoded at the cell's centre, lies within half a cell of the keypoint."""
    from tfpipe.backend import tf
    from tfpipe.models.instance.mask_rcnn import keypoint_targets

    rng = np.random.default_rng(1)
    size, height, width = 28, 96, 128
    boxes = np.sort(rng.uniform(0, 1, (20, 2, 2)), axis=1).reshape(20, 4)[:, [0, 1, 2, 3]]  # y1 x1 y2 x2
    boxes = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]], 1).astype(np.float32)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 0.05)
    points = np.stack([rng.uniform(boxes[:, 1], boxes[:, 3]) * width, rng.uniform(boxes[:, 0], boxes[:, 2]) * height,
                       np.full(20, 2.0)], -1)[:, None].astype(np.float32)  # one keypoint each
    index, valid = keypoint_targets(tf.constant(points), tf.constant(boxes), size, (height, width))
    assert np.asarray(valid).all()
    for cell, box, point in zip(np.asarray(index)[:, 0], boxes, points[:, 0], strict=True):
        heatmap = np.zeros((size, size, 1), np.float32)
        heatmap[cell // size, cell % size, 0] = 10.0
        pixel_box = box[[1, 0, 3, 2]] * np.array([width, height, width, height])
        x, y, score = instance.keypoints(heatmap, pixel_box)[0]
        assert abs(x - point[0]) <= (pixel_box[2] - pixel_box[0]) / size / 2 + 1e-3
        assert abs(y - point[1]) <= (pixel_box[3] - pixel_box[1]) / size / 2 + 1e-3
        assert score == pytest.approx(np.exp(10) / (np.exp(10) + size * size - 1), rel=1e-5)  # the softmax at the peak
    # outside the box, or not labelled: no target
    outside = np.array([[[0.0, 0.0, 2.0]], [[width / 2, height / 2, 0.0]]], np.float32)
    _, valid = keypoint_targets(tf.constant(outside), tf.constant([[0.5, 0.5, 0.9, 0.9]] * 2, tf.float32), size,
                                (height, width))
    assert not np.asarray(valid).any()


def reference_mask_targets(mask, box, size):
    """mask_targets' docstring, in NumPy: bilinear samples at the cell centres, 0 beyond the image."""
    height, width = mask.shape
    out = np.zeros((size, size))
    y1, x1, y2, x2 = box
    for i in range(size):
        for j in range(size):
            py = (y1 + (i + 0.5) / size * (y2 - y1)) * height - 0.5
            px = (x1 + (j + 0.5) / size * (x2 - x1)) * width - 0.5
            if not (0 <= py <= height - 1 and 0 <= px <= width - 1):
                continue
            r0, c0 = int(np.floor(py)), int(np.floor(px))
            r1, c1 = min(r0 + 1, height - 1), min(c0 + 1, width - 1)
            wy, wx = py - r0, px - c0
            out[i, j] = ((mask[r0, c0] * (1 - wx) + mask[r0, c1] * wx) * (1 - wy)
                         + (mask[r1, c0] * (1 - wx) + mask[r1, c1] * wx) * wy)
    return (out >= 0.5).astype(np.float32)


def test_mask_targets_equal_a_numpy_reference():
    from tfpipe.backend import tf
    from tfpipe.models.instance.mask_rcnn import mask_targets

    rng = np.random.default_rng(2)
    masks = np.zeros((6, 40, 52), np.float32)
    boxes = []
    for k in range(6):
        r, c = rng.integers(0, 30), rng.integers(0, 40)
        masks[k, r:r + rng.integers(3, 10), c:c + rng.integers(3, 12)] = 1
        masks[k] = np.maximum(masks[k], rng.uniform(0, 1, masks[k].shape) > 0.93)
        y1, x1 = rng.uniform(-0.1, 0.7, 2)
        boxes.append([y1, x1, y1 + rng.uniform(0.05, 0.5), x1 + rng.uniform(0.05, 0.5)])
    boxes = np.array(boxes, np.float32)
    got = np.asarray(mask_targets(tf.constant(masks), tf.constant(boxes), 28))
    want = np.stack([reference_mask_targets(m, b, 28) for m, b in zip(masks, boxes, strict=True)])
    assert got.shape == (6, 28, 28)
    assert np.count_nonzero(got != want) <= 3  # float32 ties at exactly 0.5


def test_keypoints_from_a_mask_follow_their_definition_and_mirror_with_the_image():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    mask[5:8, 3:5] = True
    points = from_mask(mask)
    assert points[:, 2].tolist() == [2] * 5
    assert points[0, :2].tolist() == [6.0, 2.5]  # top row 2, columns 3..8
    assert points[1, :2].tolist() == [4.0, 7.5]  # bottom row 7, columns 3..4
    assert points[2, :2].tolist() == [3.5, 5.0]  # left column 3, rows 2..7
    assert points[3, :2].tolist() == [8.5, 3.5]  # right column 8, rows 2..4
    rows, cols = np.nonzero(mask)
    assert points[4, :2].tolist() == pytest.approx([cols.mean() + 0.5, rows.mean() + 0.5])
    mirrored = from_mask(mask[:, ::-1])
    order = flip_order(GARMENT_KEYPOINTS)
    assert order == (0, 1, 3, 2, 4)
    expected = points[list(order)]
    expected[:, 0] = 12 - expected[:, 0]
    np.testing.assert_allclose(mirrored, expected)
    assert not from_mask(np.zeros((4, 4), bool)).any()


def test_coco_keypoints_and_masks_round_trip(tmp_path):
    from PIL import Image

    from tfpipe.data.formats import Dataset, ImageRecord

    Image.new("RGB", (20, 10)).save(tmp_path / "a.png")
    mask = np.zeros((10, 20), bool)
    mask[2:6, 3:9] = True
    rle = encode_masks(mask[None])[0]
    rle = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    points = from_mask(mask)[None]
    record = ImageRecord("a.png", 20, 10, np.array([[3, 2, 9, 6]], np.float32), np.array([0], np.int32),
                         np.zeros(1, bool), np.zeros(1, bool), segmentations=[rle], keypoints=points)
    coco.write(Dataset(("bag",), {"train": [record]}, tmp_path, keypoint_names=GARMENT_KEYPOINTS), tmp_path)
    written = json.loads((tmp_path / "annotations" / "train.json").read_text())
    assert written["categories"][0]["keypoints"] == list(GARMENT_KEYPOINTS)
    assert written["annotations"][0]["num_keypoints"] == 5
    back = coco.read(tmp_path)
    assert back.keypoint_names == GARMENT_KEYPOINTS
    (read,) = back.splits["train"]
    np.testing.assert_allclose(read.keypoints, points, atol=1e-3)
    assert (coco.instance_masks(read)[0] == mask).all()


def test_coco_keypoint_names_differing_between_categories_are_refused(tmp_path):
    (tmp_path / "annotations").mkdir()
    path = tmp_path / "annotations" / "train.json"
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": [
        {"id": 1, "name": "a", "keypoints": ["top"]}, {"id": 2, "name": "b", "keypoints": ["left"]}]}))
    with pytest.raises(TfpipeError, match="categories name different keypoints"):
        coco.read(tmp_path)


def test_segm_and_keypoint_ap_equal_known_answers():
    """One object: a perfect mask and keypoints give AP 1; a mask covering half the object (IoU
    0.5) counts only at the 0.5 threshold (1 of COCO's 10): AP 0.1. Keypoints off by a distance d
    give OKS exp(-d^2 / (2 s^2 (2 sigma)^2)) with s^2 the area: at OKS 0.8 they count for the
    thresholds 0.5..0.8 (7 of 10)."""
    truth = np.zeros((1, 20, 20), bool)
    truth[0, 4:14, 4:14] = True  # area 100
    half = np.zeros_like(truth)
    half[0, 4:14, 4:9] = True
    points = np.array([[[8.0, 8.0, 2.0]]])
    labels = [ImageBoxes(np.array([[4, 4, 14, 14]], np.float32), np.array([0]), masks=encode_masks(truth),
                         keypoints=points)]

    def found(masks, keypoints):
        return [ImageBoxes(np.array([[4, 4, 14, 14]], np.float32), np.array([0]), np.array([0.9]),
                           masks=encode_masks(masks), keypoints=keypoints)]

    assert coco_metrics(labels, found(truth, points), 1, "segm")["AP"] == pytest.approx(1.0)
    assert coco_metrics(labels, found(half, points), 1, "segm")["AP"] == pytest.approx(0.1)
    sigma = 0.1
    assert coco_metrics(labels, found(truth, points), 1, "keypoints", (sigma,))["AP"] == pytest.approx(1.0)
    # OKS = exp(-d^2 / (2 * area * (2 sigma)^2)) = 0.8 -> d^2 = -ln(0.8) * 2 * 100 * 0.04
    d = float(np.sqrt(-np.log(0.8) * 2 * 100 * (2 * sigma) ** 2))
    moved = points + np.array([[[d * 0.999, 0.0, 0.0]]])
    assert coco_metrics(labels, found(truth, moved), 1, "keypoints", (sigma,))["AP"] == pytest.approx(0.7)


def reference_roi_pool(features, box, pool):
    """Caffe's roi_pooling_layer for one RoI (normalised box, spatial scale folded in)."""
    height, width, channels = features.shape
    y1, x1, y2, x2 = box
    start_h, start_w = round(y1 * height), round(x1 * width)
    end_h, end_w = round(y2 * height), round(x2 * width)
    bin_h, bin_w = max(end_h - start_h + 1, 1) / pool, max(end_w - start_w + 1, 1) / pool
    out = np.zeros((pool, pool, channels), np.float32)
    for i in range(pool):
        for j in range(pool):
            h0 = min(max(int(np.floor(i * bin_h)) + start_h, 0), height)
            h1 = min(max(int(np.ceil((i + 1) * bin_h)) + start_h, 0), height)
            w0 = min(max(int(np.floor(j * bin_w)) + start_w, 0), width)
            w1 = min(max(int(np.ceil((j + 1) * bin_w)) + start_w, 0), width)
            if h1 > h0 and w1 > w0:
                out[i, j] = features[h0:h1, w0:w1].max(axis=(0, 1))
    return out


def test_roi_pool_matches_caffes_roi_pooling():
    from tfpipe.backend import tf
    from tfpipe.models.detection.faster_rcnn import roi_pool

    rng = np.random.default_rng(3)
    features = rng.normal(size=(2, 8, 10, 3)).astype(np.float32)
    corners = np.sort(rng.uniform(0, 1, (2, 5, 2, 2)), axis=2)  # [B, K, (low, high), (y, x)]
    boxes = np.concatenate([corners[:, :, 0], corners[:, :, 1]], -1).astype(np.float32)
    got = np.asarray(roi_pool(tf.constant(features), tf.constant(boxes), 4)).reshape(2, 5, 4, 4, 3)
    for b in range(2):
        for k in range(5):
            np.testing.assert_allclose(got[b, k], reference_roi_pool(features[b], boxes[b, k], 4), rtol=1e-6)


def test_the_bundle_gives_each_kept_detection_the_mask_and_keypoints_of_its_row(tmp_path):
    """Two rows, one suppressed by NMS: the kept detections carry their own rows' masks and
    keypoints, pasted into the original image with the letterbox undone."""
    from tfpipe.runtime.bundle import Bundle
    from tfpipe.runtime.contract import BOXES, KEYPOINTS, MASKS, SCORES

    spec = {"height": 32, "width": 32, "channels": 3, "resize": "letterbox"}
    anchors = [[0.25, 0.25, 0.5, 0.5], [0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5]]
    meta = {"task": "instance_segmentation", "classes": ["a", "b"], "preprocess": spec,
            "models": {"fp32": {"file": "model_fp32.tflite"}},
            "detection": {"anchors": anchors, "box_coding": {"scales": [10, 10, 5, 5]}, "score_threshold": 0.1,
                          "nms_iou": 0.5, "max_detections": 10},
            "instance": {"mask_threshold": 0.5, "keypoints": ["top"]}}
    (tmp_path / "model.json").write_text(json.dumps(meta))
    masks = np.zeros((1, 3, 28, 28), np.float32)
    masks[0, 0, 14:] = 1.0  # row 0: the bottom half of its box (its top half lies in the letterbox)
    masks[0, 1] = 1.0  # row 1: suppressed by row 0
    masks[0, 2, :, :14] = 1.0  # row 2: the left half
    heatmaps = np.zeros((1, 3, 28, 28, 1), np.float32)
    heatmaps[0, 0, 0, 0, 0] = heatmaps[0, 2, 27, 27, 0] = heatmaps[0, 1, 5, 5, 0] = 20.0
    outputs = {BOXES: np.zeros((1, 3, 4), np.float32), SCORES: np.array([[[0.9, 0], [0.8, 0], [0, 0.7]]], np.float32),
               MASKS: masks, KEYPOINTS: heatmaps}
    found = Bundle(tmp_path, "fp32").decode(outputs, (16, 32))  # a 32x16 image, letterboxed to 32x32
    assert found.classes == ["a", "b"]
    np.testing.assert_allclose(found.boxes, [[0, -8, 16, 8], [16, 8, 32, 24]], atol=1e-4)
    assert found.masks.shape == (2, 16, 32)
    assert found.masks[0, :8, :16].all() and found.masks[0].sum() == 8 * 16
    assert found.masks[1, 8:16, 16:24].all() and found.masks[1].sum() == 8 * 8
    np.testing.assert_allclose(found.keypoints[0, 0, :2], [16 / 56, -8 + 16 / 56], atol=1e-4)
    np.testing.assert_allclose(found.keypoints[1, 0, :2], [32 - 16 / 56, 24 - 16 / 56], atol=1e-4)
    assert "mask" in found.lines(["a", "b"])[1] and "top (" in found.lines(["a", "b"])[2]


def test_instance_segmentation_refuses_augmentations_that_move_masks_inexactly():
    from tfpipe import tasks
    from tfpipe.config import load_config

    cfg = load_config("configs/instance/mask_rcnn_resnet18.yaml", ["augment.jitter_scale=[0.8,1.2]"])
    with pytest.raises(TfpipeError, match="augment.jitter_scale: .* is not available for instance segmentation"):
        tasks.of(cfg)
