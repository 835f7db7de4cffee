"""Faster R-CNN (Ren et al., NeurIPS 2015) as the lectures teach it: a backbone, a region proposal
network on anchors, RoIAlign (Mask R-CNN, He et al., ICCV 2017) and a box head, trained end to end
by approximate joint training (the proposals are constants to the head's loss).

- Backbone: the zoo's ResNet-18 to stride 16 (C4), then a 1x1 convolution to `roi_channels`.
- RPN: a 3x3 convolution, then per anchor an objectness (sigmoid) and box encodings relative to
  the anchor (SSD's coding, tfpipe.runtime.detection). Anchors: every size x every ratio per cell
  (the paper's 3 x 3).
- Proposals: the `proposals` anchors of highest objectness, decoded and clipped to the image. The
  paper's NMS over proposals is left out (the final class-wise NMS removes duplicates), so the
  graph stays one that TFLite runs with builtin ops (TOPK_V2 and GATHER).
- RoIAlign: each proposal is divided into pool_size x pool_size bins; `sampling` x `sampling`
  points per bin are sampled bilinearly (half-pixel centres, Detectron2's aligned=True) and
  averaged. The bilinear sampling is two GATHERs with flat indices (rows, then columns), FLOOR
  and elementwise arithmetic: builtin ops only (see `roi_align`, checked against NumPy by a test).
- Head: two fully connected layers, a softmax over background + classes and class-agnostic box
  encodings relative to the proposal.

Outputs. The exported model gives `box_encodings` [B, K, 4] and `class_scores` [B, K, classes]
(the softmax without its background column), one row per proposal. The final box is encoded
relative to a fixed unit anchor (0.5, 0.5, 1, 1) (`anchors` returns K of them), so the same
TFLite_Detection_PostProcess, evaluator and runtime decode it: e_yx = 10 (centre - 0.5), e_hw = 5
log(size). For training (train/trainer.py `training_view`): `rpn_box_encodings`, `rpn_objectness`
and `rcnn_head` (proposals, head box encodings and probabilities, concatenated for the loss that
matches proposals to ground truths).

int8: the convolutions and dense layers are int8; the proposals' decoding, RoIAlign's sampling
arithmetic and the final box encoding stay float (`TwoStageHead.float_layers`; FLOOR and CAST have no integer
kernels anyway), so the model runs on the CPU. The Edge TPU checker names the first op it cannot map.
"""

from __future__ import annotations

import math

import numpy as np

from tfpipe.backend import keras, tf
from tfpipe.models.blocks import conv_bn
from tfpipe.models.classification.resnet import resnet
from tfpipe.models.detection import anchors as A
from tfpipe.models.detection import boxes as B
from tfpipe.models.detection.head import Head
from tfpipe.models.detection.losses import BoxLoss, bce
from tfpipe.models.registry import custom_layer, register
from tfpipe.runtime.contract import BOXES, SCORES
from tfpipe.runtime.detection import SCALES

L = keras.layers
RPN_BOXES, RPN_OBJECTNESS, HEAD = "rpn_box_encodings", "rpn_objectness", "rcnn_head"
HEAD_PARTS = ("proposals", "head_boxes", "head_probabilities")  # the layers whose outputs make up HEAD
UNIT_ANCHOR = (0.5, 0.5, 1.0, 1.0)
PRIOR_BIAS = float(-np.log((1 - 0.01) / 0.01))


def rpn_anchors(input_shape, sizes=(0.15, 0.3, 0.6), ratios=(0.5, 1.0, 2.0), stride: int = 16) -> np.ndarray:
    """The RPN's anchors [N, 4] (cy, cx, h, w): every (size, ratio) at every cell of the stride-16
    grid, row-major cells, then sizes, then ratios. Height s / sqrt(r), width s * sqrt(r) * H / W."""
    if not sizes or not ratios or min(sizes) <= 0 or min(ratios) <= 0:
        raise ValueError(f"anchor sizes and ratios must be positive, got sizes={sizes}, ratios={ratios}")
    grid = (math.ceil(input_shape[0] / stride), math.ceil(input_shape[1] / stride))
    return A.at_cells(grid, [A.shape_of(s, r, tuple(input_shape[:2])) for s in sizes for r in ratios])


def roi_align(features, boxes, pool_size: int, sampling: int):
    """RoIAlign in builtin ops. features [B, H, W, C]; boxes [B, K, 4] (ymin, xmin, ymax, xmax)
    normalised -> [B, K, pool_size * pool_size * C] (each RoI's bins flattened, row-major, channels
    last: what the head's dense layers read). Sample point j of n = pool_size * sampling along
    a side sits at ymin + (j + 0.5) / n * (ymax - ymin), in feature pixels y * H - 0.5 (pixel
    centres at .5), clamped to the map; its value is the bilinear blend of the 4 pixels around it.
    Each bin is the mean of its sampling x sampling points."""
    from tfpipe.backend import tf

    shape = tf.shape(features)
    b, h, w, c = shape[0], shape[1], shape[2], shape[3]
    k = tf.shape(boxes)[1]
    n = pool_size * sampling
    t = (tf.range(n, dtype=tf.float32) + 0.5) / n

    def points(low, high, size):
        size_f = tf.cast(size, tf.float32)
        p = (low[..., None] + t * (high - low)[..., None]) * size_f - 0.5  # [B, K, n]
        p = tf.clip_by_value(p, 0.0, size_f - 1.0)
        # The neighbour index is computed on integers: int8 conversion quantizes a float p0 + 1.0
        # (1.0 became 0.988 at the map's scale, and the cast truncated it to the same row), which
        # made every sample read one pixel twice; the fraction p - p0 only loses a quantization step.
        p0 = tf.cast(tf.floor(p), tf.int32)
        p1 = tf.minimum(p0 + 1, size - 1)
        return p0, p1, p - tf.cast(p0, tf.float32)

    y0, y1, wy = points(boxes[..., 0], boxes[..., 2], h)
    x0, x1, wx = points(boxes[..., 1], boxes[..., 3], w)
    # rows: features as [B * H, W, C], row index b * H + y
    base = tf.reshape(tf.range(b) * h, [-1, 1, 1])
    by_row = tf.reshape(features, [-1, w, c])
    top = tf.gather(by_row, tf.reshape(base + y0, [-1]))  # [B * K * n, W, C]
    bottom = tf.gather(by_row, tf.reshape(base + y1, [-1]))
    wy = tf.reshape(wy, [-1, 1, 1])
    rows = top * (1.0 - wy) + bottom * wy  # [B * K * n, W, C]
    # columns: rows as [B * K * n * W, C], index r * W + x, the same x for the n rows of a box
    by_pixel = tf.reshape(rows, [-1, c])
    row_id = tf.reshape(tf.range(b * k * n) * w, [b, k, n, 1])

    def columns(x):
        return tf.reshape(row_id + x[:, :, None, :], [-1])  # [B * K * n(y) * n(x)]

    left = tf.reshape(tf.gather(by_pixel, columns(x0)), [b * k, n, n, c])
    right = tf.reshape(tf.gather(by_pixel, columns(x1)), [b * k, n, n, c])
    wx = tf.reshape(tf.tile(wx[:, :, None, :], [1, 1, n, 1]), [b * k, n, n, 1])
    sampled = left * (1.0 - wx) + right * wx
    pooled = tf.nn.avg_pool2d(sampled, sampling, sampling, "VALID") if sampling > 1 else sampled
    return tf.reshape(pooled, [b, k, pool_size * pool_size * c])


@custom_layer
@keras.utils.register_keras_serializable(package="tfpipe")
class RoIAlign(L.Layer):
    """[features [B, H, W, C], boxes [B, K, 4]] -> [B, K, pool_size * pool_size * C] (see roi_align)."""

    # QAT (tfpipe.qat) quantizes its output: bilinear blends are new values
    quantize_output = True

    def __init__(self, pool_size: int = 7, sampling: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size, self.sampling = pool_size, sampling

    def call(self, inputs):
        return roi_align(inputs[0], inputs[1], self.pool_size, self.sampling)

    def compute_output_shape(self, input_shape):
        return (input_shape[1][0], input_shape[1][1], self.pool_size * self.pool_size * input_shape[0][-1])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "sampling": self.sampling}


def roi_pool(features, boxes, pool_size: int):
    """Fast R-CNN's RoIPool (Caffe's roi_pooling_layer, the lectures' "snap to the grid"), for the
    RoIAlign comparison: the box is rounded to whole feature pixels (start = round(ymin * H), end =
    round(ymax * H), height end - start + 1), bin i spans rows floor(i h / P) .. ceil((i + 1) h / P)
    from the start, clipped to the map, and takes the max of its pixels (0 for an empty bin).
    features [B, H, W, C]; boxes [B, K, 4] normalised -> [B, K, pool_size * pool_size * C]. The max
    over a bin is taken over columns, then over rows (a max is separable), with masks, so every
    shape is static."""
    from tfpipe.backend import tf

    shape = tf.shape(features)
    b, h, w, c = shape[0], shape[1], shape[2], shape[3]
    k = tf.shape(boxes)[1]
    bins = tf.range(pool_size, dtype=tf.float32)

    def membership(low, high, size):  # [B, K, P, size]: pixel j in bin i
        size_f = tf.cast(size, tf.float32)
        start, end = tf.round(low * size_f), tf.round(high * size_f)
        length = tf.maximum(end - start + 1.0, 1.0)[..., None] / pool_size  # [B, K, 1]
        first = tf.clip_by_value(tf.floor(bins * length) + start[..., None], 0.0, size_f)
        last = tf.clip_by_value(tf.math.ceil((bins + 1.0) * length) + start[..., None], 0.0, size_f)
        pixel = tf.range(size, dtype=tf.float32)
        return (pixel >= first[..., None]) & (pixel < last[..., None])

    rows = membership(boxes[..., 0], boxes[..., 2], h)  # [B, K, P, H]
    cols = membership(boxes[..., 1], boxes[..., 3], w)  # [B, K, P, W]
    low = tf.constant(-1e9, features.dtype)
    # columns: [B, 1, H, 1, W, C] vs [B, K, 1, P, W, 1] -> [B, K, H, P(x), C]
    by_column = tf.reduce_max(tf.where(cols[:, :, None, :, :, None], features[:, None, :, None, :, :], low), axis=4)
    # rows: [B, K, 1, H, P(x), C] vs [B, K, P(y), H, 1, 1] -> [B, K, P(y), P(x), C]
    pooled = tf.reduce_max(tf.where(rows[:, :, :, :, None, None], by_column[:, :, None], low), axis=3)
    pooled = tf.where(pooled > low / 2, pooled, tf.zeros_like(pooled))  # an empty bin gives 0
    return tf.reshape(pooled, [b, k, pool_size * pool_size * c])


@custom_layer
@keras.utils.register_keras_serializable(package="tfpipe")
class RoIPool(L.Layer):
    """[features [B, H, W, C], boxes [B, K, 4]] -> [B, K, pool_size * pool_size * C] (see roi_pool)."""

    # QAT (tfpipe.qat) leaves its output alone: maxima of the features, no new values
    quantize_output = False

    def __init__(self, pool_size: int = 7, **kwargs):
        kwargs.pop("sampling", None)
        super().__init__(**kwargs)
        self.pool_size = pool_size

    def call(self, inputs):
        return roi_pool(inputs[0], inputs[1], self.pool_size)

    def compute_output_shape(self, input_shape):
        return (input_shape[1][0], input_shape[1][1], self.pool_size * self.pool_size * input_shape[0][-1])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}


ROI_LAYERS = ("align", "pool")


def roi_layer(kind: str, pool_size: int, sampling: int, name: str):
    """RoIAlign ("align") or RoIPool ("pool"; `sampling` unused) of `pool_size` x `pool_size` bins."""
    return RoIAlign(pool_size, sampling, name=name) if kind == "align" else RoIPool(pool_size, name=name)


@custom_layer
@keras.utils.register_keras_serializable(package="tfpipe")
class Proposals(L.Layer):
    """[rpn box encodings [B, A, 4], rpn objectness [B, A, 1]] -> the `count` anchors of highest
    objectness, decoded and clipped: [B, count, 4] (ymin, xmin, ymax, xmax), without gradient
    (approximate joint training). `anchors` are the RPN's, [A, 4] (cy, cx, h, w)."""

    # QAT (tfpipe.qat) leaves its output alone: box corners picked from the RPN's, not computed values
    quantize_output = False

    def __init__(self, anchors, count: int, **kwargs):
        super().__init__(**kwargs)
        self.anchors, self.count = np.asarray(anchors, np.float32), count

    def call(self, inputs):
        from tfpipe.backend import tf

        encodings, objectness = inputs
        _, index = tf.math.top_k(objectness[..., 0], self.count)  # [B, count]
        chosen = tf.gather(encodings, index, batch_dims=1) / tf.constant(SCALES, tf.float32)
        anchors = tf.gather(tf.constant(self.anchors), index)
        centre = anchors[..., :2] + chosen[..., :2] * anchors[..., 2:]
        size = anchors[..., 2:] * tf.exp(tf.minimum(chosen[..., 2:], 4.0))  # exp(4): 55x the anchor at most
        corners = tf.clip_by_value(tf.concat([centre - size / 2, centre + size / 2], -1), 0.0, 1.0)
        return tf.stop_gradient(corners)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.count, 4)

    def get_config(self):
        return {**super().get_config(), "anchors": self.anchors.tolist(), "count": self.count}


@custom_layer
@keras.utils.register_keras_serializable(package="tfpipe")
class UnitAnchorEncoding(L.Layer):
    """[proposals [B, K, 4] corners, head encodings [B, K, 4] relative to them] -> the final boxes
    encoded relative to the unit anchor (0.5, 0.5, 1, 1): (10 (cy - 0.5), 10 (cx - 0.5), 5 log h,
    5 log w), so TFLite_Detection_PostProcess decodes them with K unit anchors."""

    # QAT (tfpipe.qat) quantizes its output: the final box encodings the post-processing op reads
    quantize_output = True

    def call(self, inputs):
        from tfpipe.backend import tf

        proposals, encodings = inputs
        scales = tf.constant(SCALES, tf.float32)
        centre = (proposals[..., :2] + proposals[..., 2:]) / 2
        size = tf.maximum(proposals[..., 2:] - proposals[..., :2], 1e-3)
        t = encodings / scales
        box_centre = centre + t[..., :2] * size
        log_size = tf.math.log(size) + tf.minimum(t[..., 2:], 4.0)
        return tf.concat([(box_centre - 0.5) * scales[:2], log_size * scales[2:]], -1)

    def compute_output_shape(self, input_shape):
        return input_shape[1]


def two_stage(input_shape, num_classes: int, depth: int = 18, sizes=(0.15, 0.3, 0.6), ratios=(0.5, 1.0, 2.0),
              proposals: int = 32, pool_size: int = 7, sampling: int = 2, roi_channels: int = 64,
              rpn_filters: int = 128, head_units: int = 256, roi: str = "align") -> dict:
    """Faster R-CNN's tensors by name: the input, `features` (the RoI feature map), `proposals`,
    `head_boxes` (encodings relative to the proposals), BOXES and SCORES (the exported outputs).
    `roi`: "align" (RoIAlign) or "pool" (Fast R-CNN's RoIPool, for the lectures' comparison)."""
    if proposals < 1 or pool_size < 1 or sampling < 1:
        raise ValueError(f"proposals, pool_size and sampling must be at least 1, got {proposals}, {pool_size}, "
                         f"{sampling}")
    if roi not in ROI_LAYERS:
        raise ValueError(f"roi={roi!r}: use one of {', '.join(ROI_LAYERS)}")
    anchors = rpn_anchors(input_shape, sizes, ratios)
    if proposals > len(anchors):
        raise ValueError(f"proposals={proposals} exceeds the RPN's {len(anchors)} anchors")
    base = resnet(input_shape, 1, depth=depth)
    c4 = base.get_layer(base.stage_ends[16]).output
    features = conv_bn(c4, roi_channels, 1, act="relu", name="roi_features")
    per_cell = len(sizes) * len(ratios)
    x = conv_bn(c4, rpn_filters, 3, act="relu", name="rpn_conv")
    rpn_boxes = L.Conv2D(4 * per_cell, 1, name="rpn_boxes")(x)
    rpn_boxes = L.Reshape((len(anchors), 4), name=RPN_BOXES)(rpn_boxes)
    rpn_logits = L.Conv2D(per_cell, 1, bias_initializer=keras.initializers.Constant(PRIOR_BIAS), name="rpn_logits")(x)
    rpn_logits = L.Reshape((len(anchors), 1), name="rpn_logits_flat")(rpn_logits)
    rpn_objectness = L.Activation("sigmoid", name=RPN_OBJECTNESS)(rpn_logits)
    boxes = Proposals(anchors, proposals, name="proposals")([rpn_boxes, rpn_objectness])
    rois = roi_layer(roi, pool_size, sampling, "roi_align")([features, boxes])  # [B, K, P * P * C]
    x = L.Dense(head_units, activation="relu", name="head_fc1")(rois)
    x = L.Dense(head_units, activation="relu", name="head_fc2")(x)
    head_boxes = L.Dense(4, name="head_boxes")(x)
    probabilities = L.Dense(num_classes + 1, activation="softmax", name="head_probabilities")(x)
    box_encodings = UnitAnchorEncoding(name=BOXES)([boxes, head_boxes])
    # the scores of the classes: the softmax without its background column, as a 1x1 "convolution"
    # that keeps columns 1..C (a builtin FULLY_CONNECTED or CONV, where a slice would be STRIDED_SLICE)
    drop_background = L.Dense(num_classes, use_bias=False, trainable=False, name=SCORES)
    scores = drop_background(probabilities)
    drop_background.set_weights([np.eye(num_classes + 1, dtype=np.float32)[:, 1:]])  # set: see yolo.py
    return {"input": base.input, "features": features, "proposals": boxes, "head_boxes": head_boxes,
            BOXES: box_encodings, SCORES: scores}


def faster_rcnn(input_shape, num_classes: int, depth: int = 18, sizes=(0.15, 0.3, 0.6), ratios=(0.5, 1.0, 2.0),
                proposals: int = 32, pool_size: int = 7, sampling: int = 2, roi_channels: int = 64,
                rpn_filters: int = 128, head_units: int = 256, roi: str = "align"):
    t = two_stage(input_shape, num_classes, depth, sizes, ratios, proposals, pool_size, sampling, roi_channels,
                  rpn_filters, head_units, roi)
    return keras.Model(t["input"], [t[BOXES], t[SCORES]], name=f"faster_rcnn_resnet{depth}")


def _anchors(input_shape, num_classes: int = 0, proposals: int = 32, sizes=(0.15, 0.3, 0.6),
             ratios=(0.5, 1.0, 2.0), **_):
    """The exported boxes' anchors: one unit anchor per proposal (see the module docstring)."""
    if proposals > len(rpn_anchors(input_shape, sizes, ratios)):
        raise ValueError(f"proposals={proposals} exceeds the RPN's anchors")
    return np.tile(np.array(UNIT_ANCHOR, np.float32), (proposals, 1))


def _rpn(input_shape, num_classes: int = 0, sizes=(0.15, 0.3, 0.6), ratios=(0.5, 1.0, 2.0), **_):
    return rpn_anchors(input_shape, sizes, ratios)



# Faster R-CNN's RPN (section 3.1.2): an anchor is an object at IoU >= 0.7 with a ground truth (or
# as a ground truth's best anchor), background below 0.3, and left out in between.
RPN_POSITIVE_IOU, RPN_NEGATIVE_IOU = 0.7, 0.3
MAX_OBJECTS = 100  # ground truths per image handed to the second stage's loss (COCO's detections cap)


def rpn_assign(anchors_yxhw: tf.Tensor, gt_yxyx: tf.Tensor) -> tf.Tensor:
    """The RPN's assignment: the lectures' IoU matching at RPN_POSITIVE_IOU (boxes.assign), then the
    unmatched anchors whose best IoU reaches RPN_NEGATIVE_IOU left out (-2)."""
    matched = B.assign(anchors_yxhw, gt_yxyx, RPN_POSITIVE_IOU)
    return tf.where((matched < 0) & (B.best_iou(anchors_yxhw, gt_yxyx) >= RPN_NEGATIVE_IOU), -2, matched)


def two_stage_targets(images: tf.Tensor, boxes: tf.RaggedTensor, classes: tf.RaggedTensor, rpn_anchors
                      ) -> dict[str, tf.Tensor]:
    """Faster R-CNN's targets: the RPN's per anchor (encodings + class id [B, A, 5], ids [B, A]) and,
    for the head, whose proposals exist only inside the model, the ground truths themselves:
    [B, MAX_OBJECTS, 5] (ymin, xmin, ymax, xmax normalised, class + 1), zero rows as padding."""
    rpn = B.training_targets(images, boxes, classes, rpn_anchors, rpn_assign)
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    normalised = boxes.with_flat_values(B.pixels_to_normalised(boxes.flat_values, height, width))
    corners = normalised[:, :MAX_OBJECTS].to_tensor(0.0, shape=[None, MAX_OBJECTS, 4])
    ids = (tf.cast(classes, tf.float32) + 1.0)[:, :MAX_OBJECTS].to_tensor(0.0, shape=[None, MAX_OBJECTS])
    ground_truth = tf.concat([corners, ids[..., None]], -1)
    return {RPN_BOXES: rpn[BOXES], RPN_OBJECTNESS: rpn[SCORES], HEAD: ground_truth}


class RpnObjectnessLoss(keras.losses.Loss):
    """The RPN's objectness term: binary cross-entropy, the mean over the object anchors and the
    mean over the background anchors averaged, which is what Faster R-CNN's 1:1 sampling of anchors
    gives in expectation; ignored anchors (class id -1) add nothing. y_true [B, A], y_pred [B, A, 1]."""

    def __init__(self, name: str = "rpn_objectness_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        p = tf.reshape(y_pred, tf.shape(y_pred)[:2])
        labels = tf.cast(tf.reshape(y_true, tf.shape(p)), tf.int32)
        positive, background = tf.cast(labels > 0, p.dtype), tf.cast(labels == 0, p.dtype)
        object_term = tf.math.divide_no_nan(tf.reduce_sum(positive * bce(p, 1.0), -1), tf.reduce_sum(positive, -1))
        background_term = tf.math.divide_no_nan(tf.reduce_sum(background * bce(p, 0.0), -1),
                                                tf.reduce_sum(background, -1))
        return 0.5 * (object_term + background_term)


def match_rois(rois, ground_truth, ids, match_iou: float):
    """Each RoI [B, K, 4] (corners, normalised) takes the ground truth [B, M, 4] it overlaps most
    (padding rows, id 0, never): (best [B, K] int32, matched [B, K] bool: IoU >= match_iou). The
    second stage's losses (box, mask, keypoints) share this matching."""
    low = tf.maximum(rois[:, :, None, :2], ground_truth[:, None, :, :2])
    high = tf.minimum(rois[:, :, None, 2:], ground_truth[:, None, :, 2:])
    inter = tf.reduce_prod(tf.maximum(high - low, 0.0), -1)

    def area(b):
        return tf.reduce_prod(tf.maximum(b[..., 2:] - b[..., :2], 0.0), -1)

    iou = tf.math.divide_no_nan(inter, area(rois)[:, :, None] + area(ground_truth)[:, None, :] - inter)
    iou = tf.where(ids[:, None, :] > 0, iou, -1.0)  # padding never matches
    return tf.argmax(iou, axis=-1, output_type=tf.int32), tf.reduce_max(iou, axis=-1) >= match_iou


class FastRCNNLoss(keras.losses.Loss):
    """The second stage's loss (Fast R-CNN, section 2.3): each proposal takes the ground truth it
    overlaps most; at IoU >= `match_iou` it learns that class and the box (smooth L1 on the
    encoding relative to the proposal, over those proposals), below it background. Cross-entropy
    is averaged over all proposals. The proposals come from the model (approximate joint training),
    so the matching happens here: y_true [B, M, 5] ground truths (ymin, xmin, ymax, xmax, class + 1;
    zero rows are padding), y_pred [B, K, 4 + 4 + classes + 1] (proposals, encodings, softmax)."""

    def __init__(self, match_iou: float = 0.5, name: str = "rcnn_head_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.match_iou = match_iou

    def call(self, y_true, y_pred):
        proposals, encodings, probabilities = y_pred[..., :4], y_pred[..., 4:8], y_pred[..., 8:]
        ground_truth, ids = y_true[..., :4], tf.cast(y_true[..., 4], tf.int32)
        best, matched = match_rois(proposals, ground_truth, ids, self.match_iou)
        labels = tf.where(matched, tf.gather(ids, best, batch_dims=1), 0)
        chosen = tf.gather(probabilities, labels[..., None], batch_dims=2)[..., 0]
        cross_entropy = -tf.reduce_mean(tf.math.log(tf.clip_by_value(chosen, 1e-7, 1.0)), -1)
        target = tf.gather(ground_truth, best, batch_dims=1)
        size = tf.maximum(proposals[..., 2:] - proposals[..., :2], 1e-3)
        centre = (proposals[..., :2] + proposals[..., 2:]) / 2
        t_size = tf.maximum(target[..., 2:] - target[..., :2], 1e-3)
        t_centre = (target[..., :2] + target[..., 2:]) / 2
        scales = tf.constant(SCALES, tf.float32)
        encoded = tf.concat([(t_centre - centre) / size, tf.math.log(t_size / size)], -1) * scales
        error = tf.abs(encoded - encodings)
        smooth_l1 = tf.reduce_sum(tf.where(error < 1.0, 0.5 * error ** 2, error - 0.5), -1)
        positive = tf.cast(matched, y_pred.dtype)
        box = tf.math.divide_no_nan(tf.reduce_sum(smooth_l1 * positive, -1), tf.reduce_sum(positive, -1))
        return cross_entropy + box


class TwoStageHead(Head):
    """Faster R-CNN's training (approximate joint training): the RPN learns its anchors' targets
    (smooth L1 + the balanced objectness term), the second stage its proposals', matched inside the
    loss because the proposals exist only in the model."""

    # In int8 the proposals' decoding, RoIAlign's sampling arithmetic and the final box encoding
    # stay float: calibrated int8 there cost 2.9 mAP points against the QAT Keras model (+0.24 with
    # them float)
    float_layers = ("proposals", "roi_align", BOXES)

    def __init__(self):
        super().__init__(_anchors)

    def geometry(self, **builder_args) -> dict:
        return {"anchors": _anchors(**builder_args), "rpn": _rpn(**builder_args)}

    def losses(self, settings, geometry: dict) -> dict:
        return {RPN_BOXES: BoxLoss(), RPN_OBJECTNESS: RpnObjectnessLoss(), HEAD: FastRCNNLoss(settings.match_iou)}

    def training_view(self, model, layers: dict):
        """The RPN's outputs, and the head's proposals, encodings and softmax in one tensor."""
        head = keras.layers.Concatenate(name=HEAD)([layers[n].output for n in HEAD_PARTS])
        return keras.Model(model.input, [layers[RPN_BOXES].output, layers[RPN_OBJECTNESS].output, head],
                           name=model.name)

    def targets(self, images, boxes, classes, settings, geometry: dict) -> dict:
        return two_stage_targets(images, boxes, classes, geometry["rpn"])


register("faster_rcnn", "detection", faster_rcnn, head=TwoStageHead())
register("faster_rcnn_resnet18", "detection", faster_rcnn, head=TwoStageHead(), depth=18)
