"""Box encoding and target assignment in TensorFlow, for the tf.data training pipeline.

The conventions are tfpipe.runtime.detection's (its `decode` inverts `encode` here): anchors
(cy, cx, h, w) normalised, encodings (ty, tx, th, tw) scaled by SCALES = 1 / SSD's variances.

Assignment, as the lectures define it (Dive into Deep Learning, 14.4.3): the IoU matrix of
anchors x ground truths; every anchor whose best IoU reaches the threshold takes that ground
truth; then, greedily, the largest entry of the whole matrix pairs its anchor and ground truth,
whose row and column are discarded, until every ground truth has an anchor. So each ground truth
gets its best free anchor first, even when its IoU is under the threshold, and two ground truths
never fight over one anchor.

A family that assigns differently (YOLO's responsible cells, the RPN's band of ignored anchors)
passes its own `assign` to `training_targets` from its family file.
"""

from __future__ import annotations

from collections.abc import Callable

from tfpipe.backend import tf
from tfpipe.runtime.contract import BOXES, SCORES
from tfpipe.runtime.detection import SCALES

IGNORED = -1  # the class id of an anchor whose score no loss term reads (an assignment's -2)


def to_corners(yxhw: tf.Tensor) -> tf.Tensor:
    centre, size = yxhw[..., :2], yxhw[..., 2:]
    return tf.concat([centre - size / 2, centre + size / 2], axis=-1)


def to_centres(yxyx: tf.Tensor) -> tf.Tensor:
    low, high = yxyx[..., :2], yxyx[..., 2:]
    return tf.concat([(low + high) / 2, high - low], axis=-1)


def pixels_to_normalised(xyxy: tf.Tensor, height, width) -> tf.Tensor:
    """The pipeline's boxes (x1, y1, x2, y2 in pixels of the model input) -> (ymin, xmin, ymax, xmax) in 0..1."""
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    return tf.stack([xyxy[..., 1] / h, xyxy[..., 0] / w, xyxy[..., 3] / h, xyxy[..., 2] / w], axis=-1)


def encode(boxes_yxhw: tf.Tensor, anchors_yxhw: tf.Tensor, scales=SCALES) -> tf.Tensor:
    """Centre-size boxes [..., N, 4] relative to anchors [N, 4] -> (ty, tx, th, tw) [..., N, 4]."""
    scales = tf.constant(scales, tf.float32)
    t_centre = (boxes_yxhw[..., :2] - anchors_yxhw[:, :2]) / anchors_yxhw[:, 2:]
    t_size = tf.math.log(tf.maximum(boxes_yxhw[..., 2:], 1e-8) / anchors_yxhw[:, 2:])
    return tf.concat([t_centre, t_size], axis=-1) * scales


def iou_matrix(a_yxyx: tf.Tensor, b_yxyx: tf.Tensor) -> tf.Tensor:
    """Pairwise IoU [N, M] of corner boxes [N, 4] and [M, 4]."""
    low = tf.maximum(a_yxyx[:, None, :2], b_yxyx[None, :, :2])
    high = tf.minimum(a_yxyx[:, None, 2:], b_yxyx[None, :, 2:])
    inter = tf.reduce_prod(tf.maximum(high - low, 0.0), axis=-1)
    area_a = tf.reduce_prod(tf.maximum(a_yxyx[:, 2:] - a_yxyx[:, :2], 0.0), axis=-1)
    area_b = tf.reduce_prod(tf.maximum(b_yxyx[:, 2:] - b_yxyx[:, :2], 0.0), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return tf.math.divide_no_nan(inter, union)


def best_iou(anchors_yxhw: tf.Tensor, gt_yxyx: tf.Tensor) -> tf.Tensor:
    """Each anchor's largest IoU with a ground truth, 0 when there is none: float32 [N]."""
    return tf.reduce_max(tf.concat([iou_matrix(to_corners(anchors_yxhw), gt_yxyx),
                                    tf.zeros([tf.shape(anchors_yxhw)[0], 1])], axis=1), axis=1)


def assign(anchors_yxhw: tf.Tensor, gt_yxyx: tf.Tensor, threshold: float = 0.5) -> tf.Tensor:
    """The ground-truth index of every anchor, -1 for background: int32 [N] (see the module docstring)."""
    num_gt = tf.shape(gt_yxyx)[0]
    overlaps = iou_matrix(to_corners(anchors_yxhw), gt_yxyx)  # [N, G]
    num_anchors = tf.shape(overlaps)[0]
    padded = tf.concat([overlaps, tf.fill([num_anchors, 1], -1.0)], axis=1)  # argmax defined when G = 0
    best_gt = tf.argmax(padded, axis=1, output_type=tf.int32)
    matched = tf.where(tf.reduce_max(padded, axis=1) >= threshold, best_gt, -1)

    def pair_best(_, table, matched):
        flat = tf.argmax(tf.reshape(table, [-1]), output_type=tf.int32)
        anchor, gt = flat // num_gt, flat % num_gt
        found = table[anchor, gt] > 0  # a ground truth that overlaps no anchor at all stays unmatched
        matched = tf.where(found & tf.equal(tf.range(num_anchors), anchor), gt, matched)
        table = tf.where(tf.equal(tf.range(num_anchors), anchor)[:, None], -1.0, table)
        table = tf.where(tf.equal(tf.range(num_gt), gt)[None, :], -1.0, table)
        return _ + 1, table, matched

    _, _, matched = tf.while_loop(lambda i, *_: i < tf.minimum(num_gt, num_anchors), pair_best,
                                  (tf.constant(0), overlaps, matched))
    return matched


def targets(anchors_yxhw: tf.Tensor, gt_yxyx: tf.Tensor, gt_classes: tf.Tensor, assign: Callable = assign
            ) -> tuple[tf.Tensor, tf.Tensor]:
    """One image's training targets: box encodings float32 [N, 4] (zero for background) and class
    ids int32 [N] with 0 = background, ground-truth class c -> c + 1, and IGNORED for an anchor
    left out. `assign(anchors, ground truths)` gives each anchor's ground-truth index, -1 for
    background, -2 for left out (default: the lectures' IoU matching at 0.5, `assign` above)."""
    matched = assign(anchors_yxhw, gt_yxyx)
    positive = matched >= 0
    index = tf.maximum(matched, 0)
    gt = tf.gather(tf.concat([gt_yxyx, tf.zeros([1, 4])], axis=0), index)  # a dummy row when G = 0
    classes = tf.gather(tf.concat([tf.cast(gt_classes, tf.int32), [0]], axis=0), index)
    encoded = encode(to_centres(tf.where(positive[:, None], gt, to_corners(anchors_yxhw))), anchors_yxhw)
    ids = tf.where(positive, classes + 1, tf.where(matched == -2, IGNORED, 0))
    return tf.where(positive[:, None], encoded, 0.0), ids


def training_targets(images: tf.Tensor, boxes: tf.RaggedTensor, classes: tf.RaggedTensor, anchors,
                     assign: Callable = assign) -> dict[str, tf.Tensor]:
    """A batch of the annotated pipeline (boxes xyxy in pixels of `images`) -> the detector's
    targets: {BOXES: [B, N, 5] encodings and class id (the box losses), SCORES: [B, N] class ids},
    with `assign` as in `targets`."""
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    anchors = tf.constant(anchors, tf.float32)
    count = anchors.shape[0]

    def one_image(item):
        encoded, ids = targets(anchors, pixels_to_normalised(item[0], height, width), item[1], assign)
        return tf.concat([encoded, tf.cast(ids, tf.float32)[:, None]], axis=-1), ids

    encoded, ids = tf.map_fn(one_image, (boxes, classes), fn_output_signature=(
        tf.TensorSpec([count, 5], tf.float32), tf.TensorSpec([count], tf.int32)))
    return {BOXES: encoded, SCORES: ids}
