"""An instance segmenter's per-detection outputs -> masks and keypoints in the image, in NumPy: the
one decoding that the evaluator (Keras and every .tflite alike), the Coral runner and the golden
vectors of the Android core (android_demo/core, InstanceDecoding.kt mirrors it) use.

- A mask is S x S soft values (the sigmoid of Mask R-CNN's mask head) over the detection's box.
  Pasting it back (Mask R-CNN section 3, "Inference"; Detectron2's paste_masks_in_image): every
  image pixel whose centre lies in the box takes the bilinear sample of the S x S grid at that
  centre (grid cell centres at (i + 0.5) / S of the box, samples clamped to the grid's edge) and
  belongs to the instance when the sample is >= `MASK_THRESHOLD`. Pixels outside the box are not
  the instance's.
- Keypoint heatmaps are S x S x K logits over the box, one map per keypoint ("one mask per
  keypoint, softmax over spatial locations"): keypoint k sits at the centre of its map's arg-max
  cell, its score is the softmax probability there. Ties take the first cell in row-major order.
"""

from __future__ import annotations

import numpy as np

MASK_THRESHOLD = 0.5


def paste_mask(mask: np.ndarray, box: np.ndarray, height: int, width: int, threshold: float = MASK_THRESHOLD
               ) -> np.ndarray:
    """mask [S, S] soft values over `box` (x1, y1, x2, y2 in pixels of a height x width image) ->
    bool [height, width] (see the module docstring). Only the box's pixels are computed."""
    mask = np.asarray(mask, np.float32)
    size_y, size_x = mask.shape
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, np.float64).reshape(4))
    out = np.zeros((height, width), bool)
    if not (x2 > x1 and y2 > y1):
        return out
    # the pixels whose centre (c + 0.5) lies in [x1, x2): c from ceil(x1 - 0.5) to ceil(x2 - 0.5) - 1
    c0, c1 = max(0, int(np.ceil(x1 - 0.5))), min(width, int(np.ceil(x2 - 0.5)))
    r0, r1 = max(0, int(np.ceil(y1 - 0.5))), min(height, int(np.ceil(y2 - 0.5)))
    if c1 <= c0 or r1 <= r0:
        return out
    rows = _sample_points(np.arange(r0, r1), y1, y2, size_y)
    cols = _sample_points(np.arange(c0, c1), x1, x2, size_x)
    (ry0, ry1, wy), (cx0, cx1, wx) = rows, cols
    top = mask[ry0][:, cx0] * (1 - wx) + mask[ry0][:, cx1] * wx
    bottom = mask[ry1][:, cx0] * (1 - wx) + mask[ry1][:, cx1] * wx
    values = top * (1 - wy[:, None]) + bottom * wy[:, None]
    out[r0:r1, c0:c1] = values >= threshold
    return out


def _sample_points(pixels: np.ndarray, low: float, high: float, size: int):
    """Image pixels -> (lower grid index, upper grid index, weight of the upper) along one side of a
    box spanning [low, high) that holds `size` grid cells."""
    p = ((pixels + 0.5) - low) / (high - low) * size - 0.5  # grid coordinates, cell centres at integers
    p = np.clip(p, 0.0, size - 1)
    p0 = np.floor(p).astype(np.int64)
    p1 = np.minimum(p0 + 1, size - 1)
    return p0, p1, (p - p0).astype(np.float32)


def keypoints(heatmaps: np.ndarray, box: np.ndarray) -> np.ndarray:
    """heatmaps [S, S, K] logits over `box` (x1, y1, x2, y2 pixels) -> float32 [K, 3]: (x, y) of each
    keypoint in the box's pixels and its softmax probability (see the module docstring)."""
    heatmaps = np.asarray(heatmaps, np.float32)
    size_y, size_x, count = heatmaps.shape
    flat = heatmaps.reshape(size_y * size_x, count)
    best = np.argmax(flat, axis=0)
    shifted = flat - flat.max(axis=0)
    probability = 1.0 / np.exp(shifted).sum(axis=0)  # exp(0) / sum at the arg-max
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, np.float64).reshape(4))
    row, col = best // size_x, best % size_x
    x = x1 + (col + 0.5) / size_x * (x2 - x1)
    y = y1 + (row + 0.5) / size_y * (y2 - y1)
    return np.stack([x, y, probability], axis=-1).astype(np.float32)
