"""Detector outputs -> boxes, in NumPy: the one decoding that the evaluator (Keras and every
.tflite alike), the Coral runner and the golden vectors of the Android core use.

Conventions (those of TFLite_Detection_PostProcess, so a raw model and the fused op agree):
- anchors are centre-size, normalised to the model input: [N, 4] = (cy, cx, h, w);
- box encodings are (ty, tx, th, tw) = ((cy - cy_a) / h_a * 10, (cx - cx_a) / w_a * 10,
  log(h / h_a) * 5, log(w / w_a) * 5): SSD's variances 0.1 and 0.2, stored as their inverses
  `SCALES` (the op's y_scale, x_scale, h_scale, w_scale);
- decoded boxes are corners, normalised: (ymin, xmin, ymax, xmax).
"""

from __future__ import annotations

import numpy as np

from tfpipe.runtime.contract import BOXES, DETECTION_BOXES, DETECTION_CLASSES, DETECTION_SCORES, NUM_DETECTIONS, SCORES  # noqa: F401

SCALES = (10.0, 10.0, 5.0, 5.0)  # y, x, h, w: 1 / SSD's variances (0.1, 0.1, 0.2, 0.2)


def corners(yxhw: np.ndarray) -> np.ndarray:
    """Centre-size (cy, cx, h, w) -> corners (ymin, xmin, ymax, xmax), on the last axis."""
    yxhw = np.asarray(yxhw, np.float32)
    centre, size = yxhw[..., :2], yxhw[..., 2:]
    return np.concatenate([centre - size / 2, centre + size / 2], axis=-1)


def centres(yxyx: np.ndarray) -> np.ndarray:
    """Corners (ymin, xmin, ymax, xmax) -> centre-size (cy, cx, h, w), on the last axis."""
    yxyx = np.asarray(yxyx, np.float32)
    low, high = yxyx[..., :2], yxyx[..., 2:]
    return np.concatenate([(low + high) / 2, high - low], axis=-1)


def decode(encodings: np.ndarray, anchors: np.ndarray, scales=SCALES) -> np.ndarray:
    """Box encodings [..., N, 4] relative to anchors [N, 4] -> corners [..., N, 4] (normalised)."""
    t = np.asarray(encodings, np.float32) / np.asarray(scales, np.float32)
    anchors = np.asarray(anchors, np.float32)
    centre = anchors[:, :2] + t[..., :2] * anchors[:, 2:]
    size = anchors[:, 2:] * np.exp(t[..., 2:])
    return corners(np.concatenate([centre, size], axis=-1))


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of corner boxes a [N, 4] and b [M, 4] (any consistent corner order) -> [N, M]."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5, score_threshold: float = 0.05,
        max_per_class: int = 100, max_total: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class-wise greedy non-maximum suppression (the lectures' NMS, per class).

    boxes [N, 4] corners shared by all classes, scores [N, C] (background excluded). Per class:
    candidates above `score_threshold`, highest first; each kept box removes the remaining ones
    whose IoU with it exceeds `iou_threshold`. Returns (boxes [K, 4], classes int32 [K], scores [K])
    of at most `max_total` detections, highest score first; equal scores keep the lower anchor
    index first, so every implementation orders ties the same way."""
    rows, classes, kept = nms_rows(boxes, scores, iou_threshold, score_threshold, max_per_class, max_total)
    return np.asarray(boxes, np.float32).reshape(-1, 4)[rows], classes, kept


def nms_rows(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5, score_threshold: float = 0.05,
             max_per_class: int = 100, max_total: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`nms`, giving the kept boxes' rows (int64 [K]) instead of the boxes: what an instance
    segmenter needs to pick each detection's mask and keypoints."""
    boxes, scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)
    kept_rows, kept_classes, kept_scores = [], [], []
    for c in range(scores.shape[1]):
        candidates = np.flatnonzero(scores[:, c] > score_threshold)
        order = candidates[np.argsort(-scores[candidates, c], kind="stable")]
        alive = np.ones(len(order), bool)
        keep = []
        for i in range(len(order)):
            if not alive[i]:
                continue
            keep.append(order[i])
            if len(keep) == max_per_class:
                break
            # IoU with the kept box only, against the candidates still alive: at most max_per_class
            # rows, where a full matrix would be candidates^2 (a thousand per class at a 0.01 threshold)
            rest = i + 1 + np.flatnonzero(alive[i + 1:])
            alive[rest] = iou(boxes[order[i]], boxes[order[rest]])[0] <= iou_threshold
        kept_rows.append(np.asarray(keep, np.int64))
        kept_classes.append(np.full(len(keep), c, np.int32))
        kept_scores.append(scores[keep, c])
    all_scores = np.concatenate(kept_scores) if kept_scores else np.zeros(0, np.float32)
    order = np.argsort(-all_scores, kind="stable")[:max_total]
    return (np.concatenate(kept_rows)[order] if kept_rows else np.zeros(0, np.int64),
            np.concatenate(kept_classes)[order] if kept_classes else np.zeros(0, np.int32), all_scores[order])


def detect(encodings: np.ndarray, scores: np.ndarray, anchors: np.ndarray, image_size: tuple[int, int],
           score_threshold: float, iou_threshold: float, max_detections: int, scales=SCALES
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw detector outputs -> its detections: (boxes float32 [K, 4] x1 y1 x2 y2 in pixels
    of the model input, classes int32 [K] without background, scores [K]), highest score first.

    encodings [N, 4], scores [N, classes]. As TFLite_Detection_PostProcess: class-wise NMS on the
    decoded boxes; the kept boxes are then clipped to the image."""
    boxes, classes, kept = nms(decode(encodings, anchors, scales), scores, iou_threshold, score_threshold,
                               max_per_class=max_detections, max_total=max_detections)
    return to_pixels(boxes, image_size), classes, kept


def detect_rows(encodings: np.ndarray, scores: np.ndarray, anchors: np.ndarray, image_size: tuple[int, int],
                score_threshold: float, iou_threshold: float, max_detections: int, scales=SCALES
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`detect`, with the kept rows of the outputs last: (boxes, classes, scores, rows)."""
    decoded = decode(encodings, anchors, scales)
    rows, classes, kept = nms_rows(decoded, scores, iou_threshold, score_threshold, max_per_class=max_detections,
                                   max_total=max_detections)
    return to_pixels(decoded[rows], image_size), classes, kept, rows


def to_pixels(yxyx: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Normalised (ymin, xmin, ymax, xmax) -> x1 y1 x2 y2 in pixels of the model input, clipped to it."""
    height, width = image_size
    xyxy = np.clip(np.asarray(yxyx, np.float32).reshape(-1, 4), 0.0, 1.0)[:, [1, 0, 3, 2]]
    return (xyxy * np.array([width, height, width, height], np.float32)).astype(np.float32)


def finished(outputs: dict[str, np.ndarray], image_size: tuple[int, int]
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's outputs of TFLite_Detection_PostProcess -> (boxes in pixels, classes, scores)."""
    count = int(np.asarray(outputs[NUM_DETECTIONS]).reshape(-1)[0])
    boxes = np.asarray(outputs[DETECTION_BOXES]).reshape(-1, 4)[:count]
    classes = np.asarray(outputs[DETECTION_CLASSES]).reshape(-1)[:count].astype(np.int32)
    return to_pixels(boxes, image_size), classes, np.asarray(outputs[DETECTION_SCORES]).reshape(-1)[:count]
