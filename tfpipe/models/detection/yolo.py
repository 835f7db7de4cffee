"""YOLOv2 (YOLO9000, Redmon & Farhadi, CVPR 2017) and YOLOv3 (Redmon & Farhadi, 2018), as the
lectures teach them, with outputs that feed the same post-processing as SSD.

Every level is a grid; each cell predicts, for each of its priors (k-means shapes, see
models/detection/anchors.py and `python -m tfpipe.data anchors`), t = (ty, tx, th, tw), an
objectness logit and class logits. YOLO decodes a box as
    centre = (cell + sigmoid(t_yx)) / grid,   size = prior * exp(t_hw).
Re-expressed relative to an anchor at the cell centre with the prior's size, that is SSD's
centre-size encoding (tfpipe.runtime.detection) with
    e_yx = (sigmoid(t_yx) - 0.5) * 10 * cell / prior,   e_hw = 5 * t_hw,
so `box_encodings` [B, N, 4] are computed in the graph (the sigmoid, then a fixed 1x1 depthwise
scale and shift per channel) and TFLite_Detection_PostProcess decodes YOLO boxes unchanged. The
5 of e_hw is absorbed by the size convolution, which learns e_hw directly.

Scores: YOLOv3's logistic objectness and per-class probabilities (`objectness` [B, N, 1] and
`class_probabilities` [B, N, classes], the outputs its loss trains); the exported score of a class
is their product, `class_scores`, YOLO's class-specific confidence. The trainer adds the two
training outputs back to the model it fits (train/trainer.py `training_view`); the saved model
outputs `box_encodings` and `class_scores` only, as SSD's does.

- YOLOv2: one output grid, 5 priors, and the passthrough layer: the features of the grid twice
  as fine, reduced by a 1x1 convolution and reorganised by space-to-depth into the output grid
  (the paper's 26x26x512 -> 13x13x2048), concatenated before the last 3x3 convolution. Backbone:
  Darknet-19 (the zoo's) or a tiny one (YOLOv2-tiny's conv/max-pool stack).
- YOLOv3: three grids (strides 8, 16, 32) with 3 priors each, smallest on the finest; from the
  coarsest, each level's features are reduced, upsampled x2 (nearest) and concatenated with the
  next finer backbone level (FPN-like). Backbone: Darknet-53 or MobileNetV2 (the zoo's). The tiny
  variant: YOLOv3-tiny's conv/max-pool stack and two grids (strides 16 and 32).

Training (YoloHead), as YOLO9000 (section 2) and YOLOv3 (section 2.1) assign: a ground truth is the
responsibility of the grid cell holding its centre, and there of the prior whose shape fits it
best (IoU of the sizes, centres aligned), over every level. Other anchors whose box overlaps a
ground truth at IoU >= the threshold are left out of the no-object term (YOLOv3 compares the
predicted box; the anchor's box is used here, so targets stay a function of the data).
The loss has YOLO's three terms on the factors of the exported scores: coordinates (YoloBoxLoss),
objectness with lambda_noobj (ObjectnessLoss) and classes (YoloClassLoss).

The MobileNetV2 variant keeps ReLU6 everywhere (the Edge TPU has no LEAKY_RELU); Darknet's keep
LeakyReLU(0.1), as the papers do.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from tfpipe.backend import keras, tf
from tfpipe.models.blocks import SpaceToDepth, conv_bn
from tfpipe.models.classification.darknet import darknet19, darknet53
from tfpipe.models.classification.mobilenet import mobilenet_v2
from tfpipe.models.detection import anchors as A
from tfpipe.models.detection.boxes import best_iou, to_centres, training_targets
from tfpipe.models.detection.head import Head
from tfpipe.models.detection.losses import bce
from tfpipe.models.registry import output_names, register
from tfpipe.runtime.contract import BOXES, SCORES
from tfpipe.runtime.detection import SCALES

L = keras.layers
# the training outputs (YoloHead.training_view): their product is SCORES, which the device reads
OBJECTNESS = "objectness"  # [B, N, 1] the logistic probability that an anchor holds an object
CLASS_PROBABILITIES = "class_probabilities"  # [B, N, classes] a logistic probability per class, given an object
# RetinaNet's prior (section 4.1): objectness starts at 0.01, so the many empty cells do not swamp
# the first steps.
PRIOR_BIAS = float(-np.log((1 - 0.01) / 0.01))

# Default priors (width, height) as fractions of the input: YOLOv2's VOC priors (13x13 grid units)
# and YOLOv3's COCO priors (pixels of 416). A config gets its dataset's own from
# `python -m tfpipe.data anchors --config X --write`.
V2_PRIORS = tuple((w / 13, h / 13) for w, h in ((1.08, 1.19), (3.42, 4.41), (6.63, 11.38), (9.42, 5.11),
                                                  (16.62, 10.52)))
V3_PRIORS = tuple((w / 416, h / 416) for w, h in ((10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119),
                                                    (116, 90), (156, 198), (373, 326)))
V3_TINY_PRIORS = tuple((w / 416, h / 416) for w, h in ((10, 14), (23, 27), (37, 58), (81, 82), (135, 169),
                                                         (344, 319)))

# Backbone taps per stride: MobileNetV2's expansion output of the block that next halves the
# resolution (SSDLite's choice) and its last convolution; Darknet-53's last residual of a stage.
MOBILENET_TAPS = {8: "block6_expand_relu6", 16: "block13_expand_relu6", 32: "head_relu6"}
DARKNET53_TAPS = {8: "stage3_7_add", 16: "stage4_7_add", 32: "stage5_3_add"}
TINY_FILTERS = (16, 32, 64, 128, 256, 512)  # YOLO-tiny's 3x3 convolutions, each followed by a max-pool


def _priors(priors, count: int | None = None) -> np.ndarray:
    try:
        p = np.asarray(priors, np.float64)
    except (TypeError, ValueError):
        p = np.zeros((0, 0))
    if p.ndim != 2 or p.shape[1] != 2 or len(p) == 0:
        raise ValueError(f"priors must be a list of [width, height] pairs, got {priors}")
    if not ((p > 0) & (p <= 2)).all():
        raise ValueError("prior widths and heights are fractions of the input: each in (0, 2]")
    if count is not None and len(p) % count:
        raise ValueError(f"{len(p)} priors do not split evenly over {count} output grids")
    return p[np.argsort(p[:, 0] * p[:, 1], kind="stable")]


def _grids(input_shape, strides) -> list[tuple[int, int]]:
    return [(math.ceil(input_shape[0] / s), math.ceil(input_shape[1] / s)) for s in strides]


def layout(input_shape, strides, priors) -> tuple[np.ndarray, np.ndarray]:
    """Anchors [N, 4] (cy, cx, h, w) at the cell centres with the priors' sizes, and each anchor's
    cell size [N, 2] (h, w); level by level (finest first), row-major cells, then the level's priors
    (smallest first), the order of the outputs. The priors split evenly over the levels by area."""
    priors = _priors(priors, len(strides))
    per_level = len(priors) // len(strides)
    anchors, cells = [], []
    for level, (gh, gw) in enumerate(_grids(input_shape, strides)):
        p = priors[level * per_level:(level + 1) * per_level]
        anchors.append(A.at_cells((gh, gw), p[:, ::-1]))  # priors are (w, h), anchors (h, w)
        cells.append(np.tile([1 / gh, 1 / gw], (gh * gw * per_level, 1)))
    return np.concatenate(anchors).astype(np.float32), np.concatenate(cells).astype(np.float32)


def _head(x, level: int, grid: tuple[int, int], priors: np.ndarray, num_classes: int):
    """One grid's predictions, flattened to [cells * priors, ...]: SSD-encoded boxes, objectness
    and class probabilities."""
    count, cells = len(priors), grid[0] * grid[1] * len(priors)
    yx = L.Conv2D(2 * count, 1, name=f"yolo{level}_yx")(x)
    yx = L.Activation("sigmoid", name=f"yolo{level}_yx_sigmoid")(yx)
    # (sigmoid - 0.5) * 10 * cell / prior per channel (prior k: channels 2k = y, 2k + 1 = x): fixed
    factor = np.array([[SCALES[0] / (grid[0] * h), SCALES[1] / (grid[1] * w)] for w, h in priors],
                      np.float32).reshape(-1)
    shift = L.DepthwiseConv2D(1, name=f"yolo{level}_yx_encode", trainable=False)
    yx = shift(yx)
    # set, not initialised: the weights travel with the model file, an array initialiser would not
    # survive tfmot's (legacy-format) cloning
    shift.set_weights([factor.reshape(1, 1, -1, 1), -0.5 * factor])
    hw = L.Conv2D(2 * count, 1, name=f"yolo{level}_hw")(x)
    boxes = L.Concatenate(name=f"yolo{level}_boxes")([L.Reshape((cells, 2), name=f"yolo{level}_yx_flat")(yx),
                                                      L.Reshape((cells, 2), name=f"yolo{level}_hw_flat")(hw)])
    objectness = L.Conv2D(count, 1, bias_initializer=keras.initializers.Constant(PRIOR_BIAS),
                          name=f"yolo{level}_objectness")(x)
    objectness = L.Reshape((cells, 1), name=f"yolo{level}_objectness_flat")(objectness)
    classes = L.Conv2D(count * num_classes, 1, name=f"yolo{level}_classes")(x)
    classes = L.Reshape((cells, num_classes), name=f"yolo{level}_classes_flat")(classes)
    return boxes, objectness, classes


def _outputs(inputs, features, grids, priors, num_classes: int, name: str):
    per_level = len(priors) // len(features)
    parts = [_head(f, level, grid, priors[level * per_level:(level + 1) * per_level], num_classes)
             for level, (f, grid) in enumerate(zip(features, grids, strict=True))]
    got = [tuple(f.shape[1:3]) for f in features]
    if got != list(grids):  # the anchors are laid out on `grids`
        raise ValueError(f"feature maps {got} differ from the anchor grid {grids}")

    def joined(index: int, layer_name: str):
        tensors = [p[index] for p in parts]
        return L.Concatenate(axis=1, name=layer_name)(tensors) if len(tensors) > 1 else \
            L.Activation("linear", name=layer_name)(tensors[0])

    boxes = joined(0, BOXES)
    objectness = L.Activation("sigmoid", name=OBJECTNESS)(joined(1, "objectness_logits"))
    probabilities = L.Activation("sigmoid", name=CLASS_PROBABILITIES)(joined(2, "class_logits"))
    # YOLO's class-specific confidence. The objectness is repeated to the classes' width first: an
    # elementwise MUL of equal shapes is what every delegate maps.
    repeated = L.Concatenate(name="objectness_per_class")([objectness] * num_classes) if num_classes > 1 \
        else objectness
    scores = L.Multiply(name=SCORES)([repeated, probabilities])
    return keras.Model(inputs, [boxes, scores], name=name)


def _tiny_backbone(inputs, act: str, out_stride: int, width: float = 1.0) -> dict:
    """YOLO-tiny's stack: 3x3 convolutions of 16..512 filters, each followed by a 2x2 max-pool (of
    stride 2 until `out_stride` is reached, then of stride 1), then a 3x3 convolution of 1024.
    Returns the last features at each stride, {1: ..., 2: ..., ..., out_stride: the last conv}.
    `width` scales every convolution's filters."""
    x, taps, stride = inputs, {}, 1
    for i, filters in enumerate(TINY_FILTERS):
        x = conv_bn(x, max(8, round(filters * width)), 3, act=act, name=f"tiny{i}")
        taps[stride] = x
        step = 2 if stride < out_stride else 1
        x = L.MaxPooling2D(2, step, padding="same", name=f"tiny{i}_pool")(x)
        stride *= step
    taps[stride] = conv_bn(x, max(8, round(1024 * width)), 3, act=act, name="tiny_last")
    return taps


def yolo_v2(input_shape, num_classes: int, priors=V2_PRIORS, backbone: str = "darknet19", stride: int = 32,
            filters: int = 1024, passthrough_filters: int = 64, width: float = 1.0):
    """YOLOv2 at output stride 32 (the paper's) or 16 (for small inputs: 128 / 32 is a 4x4 grid).
    `width` scales the tiny backbone's filters."""
    priors = _priors(priors, 1)
    if stride not in (16, 32):
        raise ValueError(f"stride must be 16 or 32, got {stride}")
    if backbone == "darknet19":
        if width != 1.0:
            raise ValueError("width applies to the tiny backbone only")
        base = darknet19(input_shape, 1)
        act, inputs = "leaky", base.input
        fine = base.get_layer(base.stage_ends[stride // 2]).output
        x = base.get_layer(base.stage_ends[stride]).output
    elif backbone == "tiny":
        inputs, act = keras.Input(input_shape, name="images"), "leaky"
        taps = _tiny_backbone(inputs, act, stride, width)
        fine, x = taps[stride // 2], taps[stride]
    else:
        raise ValueError(f"backbone must be darknet19 or tiny, got {backbone!r}")
    x = conv_bn(x, filters, 3, act=act, name="v2_conv1")
    x = conv_bn(x, filters, 3, act=act, name="v2_conv2")
    p = conv_bn(fine, passthrough_filters, 1, act=act, name="passthrough_reduce")
    p = SpaceToDepth(2, name="passthrough")(p)
    x = L.Concatenate(name="passthrough_concat")([p, x])
    x = conv_bn(x, filters, 3, act=act, name="v2_conv3")
    grids = _grids(input_shape, [stride])
    return _outputs(inputs, [x], grids, priors, num_classes, name=f"yolo_v2_{backbone}")


def yolo_v3(input_shape, num_classes: int, priors=V3_PRIORS, backbone: str = "mobilenet_v2", width: float = 1.0,
            filters: int = 512):
    """YOLOv3 on three grids (strides 8, 16, 32). `filters` is the coarsest level's width (the
    paper's 512; each finer level halves it); the MobileNetV2 variant uses 1x1 + depthwise 3x3
    blocks in place of plain 3x3 convolutions, as YOLOv3-MobileNet ports do."""
    if backbone == "mobilenet_v2":
        base, taps, act = mobilenet_v2(input_shape, 1, width=width), MOBILENET_TAPS, "relu6"
    elif backbone == "darknet53":
        if width != 1.0:
            raise ValueError("width applies to the mobilenet_v2 backbone only")
        base, taps, act = darknet53(input_shape, 1), DARKNET53_TAPS, "leaky"
    else:
        raise ValueError(f"backbone must be mobilenet_v2 or darknet53, got {backbone!r}")
    strides = (8, 16, 32)
    priors = _priors(priors, len(strides))
    features = {s: base.get_layer(taps[s]).output for s in strides}
    separable = backbone == "mobilenet_v2"
    outputs, x = {}, None
    for k, s in enumerate(reversed(strides)):
        f = filters // 2 ** k
        y = features[s]
        if x is not None:
            x = conv_bn(x, f, 1, act=act, name=f"up{s}_reduce")
            x = L.UpSampling2D(2, name=f"up{s}")(x)
            y = L.Concatenate(name=f"up{s}_concat")([x, y])
        x = _conv_set(y, f, act, separable, name=f"neck{s}")
        outputs[s] = _conv3(x, 2 * f, act, separable, name=f"neck{s}_out")
    grids = _grids(input_shape, strides)
    return _outputs(base.input, [outputs[s] for s in strides], grids, priors, num_classes,
                    name=f"yolo_v3_{backbone}")


def yolo_v3_tiny(input_shape, num_classes: int, priors=V3_TINY_PRIORS, act: str = "leaky", width: float = 1.0):
    """YOLOv3-tiny: the tiny stack, a 3x3 convolution of 512 at stride 32 after a 1x1 of 256, and
    at stride 16 that 1x1 reduced to 128, upsampled and concatenated with the stride-16 features.
    `width` scales every convolution's filters."""
    inputs = keras.Input(input_shape, name="images")
    taps = _tiny_backbone(inputs, act, 32, width)

    def n(filters):
        return max(8, round(filters * width))

    x = conv_bn(taps[32], n(256), 1, act=act, name="neck32_reduce")
    coarse = conv_bn(x, n(512), 3, act=act, name="neck32_out")
    x = conv_bn(x, n(128), 1, act=act, name="up16_reduce")
    x = L.Concatenate(name="up16_concat")([L.UpSampling2D(2, name="up16")(x), taps[16]])
    fine = conv_bn(x, n(256), 3, act=act, name="neck16_out")
    priors = _priors(priors, 2)
    return _outputs(inputs, [fine, coarse], _grids(input_shape, (16, 32)), priors, num_classes, name="yolo_v3_tiny")


def _conv3(x, filters: int, act: str, separable: bool, name: str):
    if not separable:
        return conv_bn(x, filters, 3, act=act, name=name)
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
    x = L.BatchNormalization(epsilon=1e-3, momentum=0.9, name=f"{name}_dwbn")(x)
    x = L.ReLU(6.0, name=f"{name}_dwrelu6")(x)
    return conv_bn(x, filters, 1, act=act, name=name)


def _conv_set(x, filters: int, act: str, separable: bool, name: str):
    """YOLOv3's five convolutions: 1x1, 3x3 (x2 filters), 1x1, 3x3, 1x1."""
    x = conv_bn(x, filters, 1, act=act, name=f"{name}_a")
    x = _conv3(x, 2 * filters, act, separable, name=f"{name}_b")
    x = conv_bn(x, filters, 1, act=act, name=f"{name}_c")
    x = _conv3(x, 2 * filters, act, separable, name=f"{name}_d")
    return conv_bn(x, filters, 1, act=act, name=f"{name}_e")


# -- training: assignment and losses ------------------------------------------------------------------

def assign(anchors_yxhw: tf.Tensor, gt_yxyx: tf.Tensor, cells_hw: tf.Tensor, threshold: float = 0.5) -> tf.Tensor:
    """YOLO's responsibility (see "Training" in the module docstring): the ground-truth index of
    every anchor, -1 for background, -2 for an anchor left out of the no-object term: int32 [N].
    `cells_hw` [N, 2] is each anchor's cell size. When two ground truths pick one anchor the later
    one keeps it, as in Darknet."""
    gt = to_centres(gt_yxyx)
    num_anchors = tf.shape(anchors_yxhw)[0]
    # the cell holding the centre, by cell index on each anchor's grid (a centre on an edge belongs
    # to the cell below / right of it; one on the image's far edge to the last cell)
    centre = tf.clip_by_value(gt[None, :, :2], 0.0, 1.0 - 1e-6)
    inside = tf.reduce_all(tf.equal(tf.floor(centre / cells_hw[:, None, :]),
                                    tf.floor(anchors_yxhw[:, None, :2] / cells_hw[:, None, :])), axis=-1)
    low = tf.minimum(anchors_yxhw[:, None, 2:], gt[None, :, 2:])
    inter = low[..., 0] * low[..., 1]
    shape_iou = inter / (anchors_yxhw[:, None, 2] * anchors_yxhw[:, None, 3] + gt[None, :, 2] * gt[None, :, 3] - inter)
    responsible = tf.argmax(tf.where(inside, shape_iou, -1.0), axis=0, output_type=tf.int32)  # [G]
    found = tf.reduce_any(inside, axis=0)  # a centre outside the image has no cell
    num_gt = tf.shape(gt)[0]
    overlapping = best_iou(anchors_yxhw, gt_yxyx) >= threshold
    # the highest ground-truth index per anchor (an empty segment gives int32's minimum)
    owner = tf.math.unsorted_segment_max(tf.boolean_mask(tf.range(num_gt), found),
                                         tf.boolean_mask(responsible, found), num_anchors)
    return tf.where(owner >= 0, owner, tf.where(overlapping, -2, -1))


class YoloBoxLoss(keras.losses.Loss):
    """YOLO's coordinate term: lambda_coord x the squared error of the responsible anchors' centre
    offsets (in grid cells, YOLOv2's sigmoid(t_yx)) and log sizes (t_hw), each weighted by
    2 - w * h (YOLOv3: small boxes count more), summed per image. The model outputs SSD encodings
    (see the module docstring); per anchor, prior / (10 * cell) and 1 / 5 turn their differences
    back into YOLO's units. y_true [B, N, 5] as BoxLoss's."""

    def __init__(self, anchors, cells, lambda_coord: float = 5.0, name: str = "yolo_box_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        anchors = tf.constant(anchors, tf.float32)
        self.prior_hw = anchors[:, 2:]
        self.units = tf.concat([anchors[:, 2:] / (10.0 * tf.constant(cells, tf.float32)),
                                tf.fill([anchors.shape[0], 2], 1 / 5.0)], axis=-1)
        self.lambda_coord = lambda_coord

    def call(self, y_true, y_pred):
        positive = tf.cast(y_true[..., 4] > 0, y_pred.dtype)
        size = self.prior_hw * tf.exp(y_true[..., 2:4] / 5.0)  # the ground truth's (h, w), normalised
        weight = 2.0 - size[..., 0] * size[..., 1]
        error = tf.reduce_sum(((y_true[..., :4] - y_pred) * self.units) ** 2, axis=-1)
        return self.lambda_coord * tf.reduce_sum(error * weight * positive, axis=-1)


class ObjectnessLoss(keras.losses.Loss):
    """YOLO's confidence term: binary cross-entropy of the objectness, towards 1 at the responsible
    anchors and towards 0, weighted by lambda_noobj, at background anchors; anchors marked ignored
    (class id -1) add nothing. Summed per image. y_true [B, N] class ids, y_pred [B, N, 1]."""

    def __init__(self, lambda_noobj: float = 0.5, name: str = "objectness_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.lambda_noobj = lambda_noobj

    def call(self, y_true, y_pred):
        p = tf.reshape(y_pred, tf.shape(y_pred)[:2])
        labels = tf.cast(tf.reshape(y_true, tf.shape(p)), tf.int32)
        positive, background = tf.cast(labels > 0, p.dtype), tf.cast(labels == 0, p.dtype)
        return tf.reduce_sum(positive * bce(p, 1.0) + self.lambda_noobj * background * bce(p, 0.0), axis=-1)


class YoloClassLoss(keras.losses.Loss):
    """YOLOv3's classification term: binary cross-entropy of every class probability at the
    responsible anchors (independent logistic classifiers), summed per image. y_true [B, N] class
    ids (c + 1), y_pred [B, N, classes]."""

    def __init__(self, name: str = "yolo_class_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        labels = tf.cast(tf.reshape(y_true, tf.shape(y_pred)[:-1]), tf.int32)
        target = tf.one_hot(labels - 1, tf.shape(y_pred)[-1], dtype=y_pred.dtype)
        positive = tf.cast(labels > 0, y_pred.dtype)
        return tf.reduce_sum(tf.reduce_sum(bce(y_pred, target), axis=-1) * positive, axis=-1)


# -- anchors and cell sizes, for the same arguments as each builder --------------------------------

def _v2_layout(input_shape, num_classes: int = 0, priors=V2_PRIORS, stride: int = 32, **_):
    if stride not in (16, 32):
        raise ValueError(f"stride must be 16 or 32, got {stride}")
    return layout(input_shape, (stride,), priors)


def _v3_layout(input_shape, num_classes: int = 0, priors=V3_PRIORS, **_):
    return layout(input_shape, (8, 16, 32), priors)


def _v3_tiny_layout(input_shape, num_classes: int = 0, priors=V3_TINY_PRIORS, **_):
    return layout(input_shape, (16, 32), priors)


class YoloHead(Head):
    """YOLO's training (see "Training" in the module docstring): `assign`, which needs each anchor's
    cell, and the three loss terms on the factors of the exported scores."""

    def __init__(self, layout_fn):
        super().__init__(lambda **args: layout_fn(**args)[0])
        self._layout = layout_fn

    def geometry(self, **builder_args) -> dict:
        anchors, cells = self._layout(**builder_args)
        return {"anchors": anchors, "cells": cells}

    def losses(self, settings, geometry: dict) -> dict:
        return {BOXES: YoloBoxLoss(geometry["anchors"], geometry["cells"], settings.lambda_coord),
                OBJECTNESS: ObjectnessLoss(settings.lambda_noobj), CLASS_PROBABILITIES: YoloClassLoss()}

    def training_view(self, model, layers: dict):
        """`objectness` and `class_probabilities` (tfmot's `quant_` copies in a QAT model) become
        outputs in place of their product `class_scores`, which the device reads."""
        outputs = [model.outputs[output_names(model).index(BOXES)], layers[OBJECTNESS].output,
                   layers[CLASS_PROBABILITIES].output]
        return keras.Model(model.input, outputs, name=model.name)

    def targets(self, images, boxes, classes, settings, geometry: dict) -> dict:
        ids = training_targets(images, boxes, classes, geometry["anchors"],
                               partial(assign, cells_hw=tf.constant(geometry["cells"], tf.float32),
                                       threshold=settings.match_iou))
        return {**ids, OBJECTNESS: ids[SCORES], CLASS_PROBABILITIES: ids[SCORES]}


for _name, _builder, _layout, _fixed in (
        ("yolo_v2", yolo_v2, _v2_layout, {}),
        ("yolov2_tiny", yolo_v2, _v2_layout, {"backbone": "tiny"}),
        ("yolo_v3", yolo_v3, _v3_layout, {}),
        ("yolov3_mnv2", yolo_v3, _v3_layout, {"backbone": "mobilenet_v2"}),
        ("yolov3_darknet53", yolo_v3, _v3_layout, {"backbone": "darknet53"}),
        ("yolov3_tiny", yolo_v3_tiny, _v3_tiny_layout, {})):
    register(_name, "detection", _builder, head=YoloHead(_layout), **_fixed)
