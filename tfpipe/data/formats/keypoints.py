"""Keypoints of a garment, defined from its instance mask (FashionScenes has no annotated keypoints).

The definition is deterministic and mirrors with the image (flipping the mask left-right moves
each keypoint to x' = W - x and swaps `left` and `right`, `flip_order`), so horizontal-flip
augmentation keeps targets exact. Coordinates are pixel centres (column c is x = c + 0.5), as COCO
keypoints are continuous image coordinates:

- top: the top-most row holding mask pixels, at the mean x of that row's pixels;
- bottom: the bottom-most row, likewise;
- left: the left-most column, at the mean y of that column's pixels;
- right: the right-most column, likewise;
- centre: the centroid of all mask pixels (it may fall outside the mask of a bag with a handle).

Every keypoint of a non-empty mask is visible (v = 2): it lies on the visible silhouette by
construction (the centroid on its convex hull). OKS sigmas (COCO's per-keypoint falloff,
pycocotools `kpt_oks_sigmas`): 0.079 for the four extremes (COCO's shoulders: a point on the
outline, ambiguous along a flat edge), 0.107 for the centre (COCO's hips: a point inferred from
the whole shape).
"""

from __future__ import annotations

import numpy as np

GARMENT_KEYPOINTS = ("top", "bottom", "left", "right", "centre")
GARMENT_SIGMAS = (0.079, 0.079, 0.079, 0.079, 0.107)


def from_mask(mask: np.ndarray) -> np.ndarray:
    """bool [H, W] instance mask -> float32 [5, 3] (x, y, visibility) in GARMENT_KEYPOINTS' order;
    an empty mask gives zeros (v = 0: not labelled)."""
    rows, cols = np.nonzero(np.asarray(mask, bool))
    out = np.zeros((len(GARMENT_KEYPOINTS), 3), np.float32)
    if not len(rows):
        return out
    x, y = cols + 0.5, rows + 0.5
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    out[0] = x[rows == top].mean(), top + 0.5, 2
    out[1] = x[rows == bottom].mean(), bottom + 0.5, 2
    out[2] = left + 0.5, y[cols == left].mean(), 2
    out[3] = right + 0.5, y[cols == right].mean(), 2
    out[4] = x.mean(), y.mean(), 2
    return out


def flip_order(names: tuple[str, ...]) -> tuple[int, ...]:
    """For a left-right mirrored image: the index of the keypoint each keypoint becomes. A name with
    'left' swaps with the same name with 'right' (COCO's left_eye / right_eye, the garments' left /
    right), when the dataset has both; every other keypoint stays."""
    index = {n: i for i, n in enumerate(names)}

    def partner(name: str) -> str:
        swapped = name.replace("left", "\0").replace("right", "left").replace("\0", "right")
        return swapped if swapped in index else name

    return tuple(index[partner(n)] for n in names)
