"""Anchor boxes (SSD's default boxes) and YOLO's k-means priors, in NumPy.

Multibox anchors, as the lectures build them (Dive into Deep Learning, 14.4): on an h x w feature
map every cell centre ((i + 0.5) / h, (j + 0.5) / w) gets, for sizes s1..sn and ratios r1..rm, the
n + m - 1 boxes (s_i, r_1) for every i and (s_1, r_j) for j >= 2, of height s / sqrt(r) and width
s * sqrt(r) * H / W (normalised to the image, so that in pixels width / height = r and the area is
(s * H)^2). Anchors are centre-size (cy, cx, h, w), the layout TFLite_Detection_PostProcess reads;
the order is level by level, then row-major cells, then the n + m - 1 boxes of a cell, which is
the order a head's [h, w, n + m - 1, 4] output flattens to.

YOLO priors (YOLO9000, section 2): k-means over the training boxes' (width, height) with
1 - IoU as the distance, the boxes compared as if they shared a centre, so that large boxes do
not dominate as they would under Euclidean distance.
"""

from __future__ import annotations

import numpy as np


def per_location(sizes, ratios) -> list[tuple[float, float]]:
    """The (size, ratio) pairs of one cell: (s_i, r_1) for every i, then (s_1, r_j) for j >= 2."""
    return [(s, ratios[0]) for s in sizes] + [(sizes[0], r) for r in ratios[1:]]


def at_cells(feature_size: tuple[int, int], shapes_hw) -> np.ndarray:
    """Boxes of the given shapes [k, 2] (h, w) at every cell centre ((i + 0.5) / h, (j + 0.5) / w)
    of an h x w grid: float32 [h * w * k, 4] (cy, cx, h, w), row-major cells, then the shapes."""
    h, w = feature_size
    shapes = np.asarray(shapes_hw, np.float32).reshape(-1, 2)
    cy, cx = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
    centre = np.stack([cy, cx], axis=-1).reshape(-1, 1, 2).astype(np.float32)
    boxes = np.concatenate([np.broadcast_to(centre, (h * w, len(shapes), 2)),
                            np.broadcast_to(shapes, (h * w, len(shapes), 2))], axis=-1)
    return boxes.reshape(-1, 4)


def shape_of(size: float, ratio: float, image_size: tuple[int, int] = (1, 1)) -> tuple[float, float]:
    """(h, w) normalised of the box of size s and ratio r: s / sqrt(r) high, s * sqrt(r) * H / W wide,
    so that in pixels width / height = r and the area is (s * H)^2."""
    return size / np.sqrt(ratio), size * np.sqrt(ratio) * image_size[0] / image_size[1]


def multibox(feature_size: tuple[int, int], sizes, ratios, image_size: tuple[int, int] = (1, 1)) -> np.ndarray:
    """Anchors of one feature map: float32 [h * w * (n + m - 1), 4], (cy, cx, h, w) normalised."""
    return at_cells(feature_size, [shape_of(s, r, image_size) for s, r in per_location(sizes, ratios)])


def ssd_sizes(levels: int, smallest: float = 0.1, largest: float = 0.9) -> list[tuple[float, float]]:
    """SSD's scales (section 2.2): s_k evenly from `smallest` to `largest` over the levels, and
    each level's second size sqrt(s_k * s_{k+1}) (the paper's extra square box)."""
    scales = np.linspace(smallest, largest, levels + 1) if levels > 1 else np.array([smallest, largest])
    return [(float(scales[k]), float(np.sqrt(scales[k] * scales[k + 1]))) for k in range(levels)]


def pyramid(feature_sizes: list[tuple[int, int]], sizes: list, ratios, image_size: tuple[int, int]) -> np.ndarray:
    """Anchors of every level, concatenated in level order: [N, 4] (cy, cx, h, w)."""
    return np.concatenate([multibox(f, s, ratios, image_size) for f, s in zip(feature_sizes, sizes, strict=True)])


def wh_iou(wh: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """IoU of boxes [N, 2] and priors [K, 2] given as (width, height), sharing one centre -> [N, K]."""
    inter = np.minimum(wh[:, None, 0], priors[None, :, 0]) * np.minimum(wh[:, None, 1], priors[None, :, 1])
    union = wh[:, 0:1] * wh[:, 1:2] + (priors[:, 0] * priors[:, 1])[None, :] - inter
    return inter / union


def kmeans_priors(wh: np.ndarray, k: int, seed: int = 0, restarts: int = 10, iterations: int = 300) -> np.ndarray:
    """k priors (width, height) from boxes wh [N, 2] by k-means with distance 1 - IoU.

    Each of `restarts` runs seeds by k-means++ on that distance, then iterates Lloyd's steps with a
    cluster's centre at the median of its members (more robust than the mean for box sizes); the
    run with the highest mean best IoU wins, since one run can settle with two priors in one
    cluster. Returned sorted by area, smallest first."""
    wh = np.asarray(wh, np.float64).reshape(-1, 2)
    if len(wh) < k:
        raise ValueError(f"k-means needs at least k={k} boxes, got {len(wh)}")
    if (wh <= 0).any():
        raise ValueError("box widths and heights must be positive")
    rng = np.random.default_rng(seed)
    best, best_fit = None, -1.0
    for _ in range(restarts):
        priors = _lloyd(wh, _kmeans_pp(wh, k, rng), iterations)
        fit = mean_best_iou(wh, priors)
        if fit > best_fit:
            best, best_fit = priors, fit
    return best[np.argsort(best[:, 0] * best[:, 1])]


def _kmeans_pp(wh: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: a box far (in 1 - IoU) from the priors chosen so far is likelier next."""
    priors = wh[[rng.integers(len(wh))]]
    while len(priors) < k:
        distance = 1 - wh_iou(wh, priors).max(axis=1)
        if distance.sum() <= 0:  # fewer distinct shapes than k
            return np.concatenate([priors, wh[rng.choice(len(wh), k - len(priors))]])
        priors = np.concatenate([priors, wh[[rng.choice(len(wh), p=distance / distance.sum())]]])
    return priors


def _lloyd(wh: np.ndarray, priors: np.ndarray, iterations: int) -> np.ndarray:
    assignment = None
    for _ in range(iterations):
        nearest = np.argmax(wh_iou(wh, priors), axis=1)
        if assignment is not None and np.array_equal(nearest, assignment):
            break
        assignment = nearest
        priors = np.array([np.median(wh[nearest == j], axis=0) if (nearest == j).any() else priors[j]
                           for j in range(len(priors))])
    return priors


def mean_best_iou(wh: np.ndarray, priors: np.ndarray) -> float:
    """The average over boxes of the IoU with their best prior (YOLO9000's 'Avg IOU', Table 1)."""
    return float(wh_iou(np.asarray(wh, np.float64), np.asarray(priors, np.float64)).max(axis=1).mean())
