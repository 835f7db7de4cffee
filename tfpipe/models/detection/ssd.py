"""SSD (Liu et al., ECCV 2016) as SSDLite on MobileNetV2 (Sandler et al., CVPR 2018, section 6.3).

Feature maps: MobileNetV2's expansion output of its first stride-32 block (stride 16, as in the
paper's SSDLite) and its 1280-wide last convolution (stride 32), then `extra_levels` more, each
a 1x1 convolution to half its channels, a 3x3 depthwise convolution of stride 2 and a 1x1
convolution (SSDLite's depthwise extras). Every level has two heads, SSDLite's separable
prediction layers (3x3 depthwise + BN + ReLU6, then a 1x1 convolution): anchors x 4 box
encodings and anchors x classes scores.

Outputs, flattened level by level in the anchors' order (models/detection/anchors.py):
`box_encodings` [B, N, 4] (ty, tx, th, tw) and `class_scores` [B, N, classes], a sigmoid per
class (background is every score low), trained with the focal loss (models/detection/losses.py). Sigmoid,
not SSD's softmax over background + classes: the Edge TPU maps LOGISTIC at any size, while its
SOFTMAX takes one 1-D input of at most 16,000 elements, which would leave the scores on the CPU.
Two outputs, not one: int8 gives every tensor one scale, and box offsets and probabilities in one
tensor would share it (peers lose mAP exactly so).

`first_stride: 8` adds a level at stride 8 (the expansion output of the first stride-16 block),
for small objects: on FashionScenes at 128x128 it lifts the share of ground-truth boxes with an
anchor of IoU >= 0.5 from 72 % to 90 % (smallest 0.1).

Anchors: SSD's scales (section 2.2) from `smallest` to `largest` over the levels, two square
sizes per level and the ratios 2 and 1/2: 2 + 3 - 1 = 4 per cell.
"""

from __future__ import annotations

import math

import numpy as np

from tfpipe.backend import keras
from tfpipe.models.blocks import conv_bn
from tfpipe.models.classification.mobilenet import mobilenet_v2
from tfpipe.models.detection import anchors as A
from tfpipe.models.detection.head import Head
from tfpipe.models.registry import register
from tfpipe.runtime.contract import BOXES, SCORES

L = keras.layers
RATIOS = (1.0, 2.0, 0.5)
# RetinaNet's prior (section 4.1): class scores start at 0.01, so the many background anchors do not
# swamp the first steps of the focal loss.
PRIOR_BIAS = float(-np.log((1 - 0.01) / 0.01))


# The backbone layer of each stride: the expansion output of the block that next halves the
# resolution (where SSDLite taps stride 16), and the last convolution for stride 32.
TAPS = {8: "block6_expand_relu6", 16: "block13_expand_relu6", 32: "head_relu6"}


def feature_sizes(input_shape, extra_levels: int = 2, first_stride: int = 16) -> list[tuple[int, int]]:
    """Each level's feature-map size: 'same' padding gives ceil(side / stride) at strides
    first_stride, ..., 32, 64, ..."""
    strides = [s for s in TAPS if s >= first_stride] + [64 * 2 ** k for k in range(extra_levels)]
    return [(math.ceil(input_shape[0] / s), math.ceil(input_shape[1] / s)) for s in strides]


def ssd_anchors(input_shape, num_classes: int = 0, width: float = 1.0, extra_levels: int = 2,
                smallest: float = 0.15, largest: float = 0.95, first_stride: int = 16, **_) -> np.ndarray:
    """The model's anchors [N, 4] (cy, cx, h, w), for the same arguments as the builder."""
    _check(smallest, largest, first_stride)
    sizes = feature_sizes(input_shape, extra_levels, first_stride)
    return A.pyramid(sizes, A.ssd_sizes(len(sizes), smallest, largest), RATIOS, tuple(input_shape[:2]))


def _check(smallest: float, largest: float, first_stride: int) -> None:
    if not 0 < smallest < largest:
        raise ValueError(f"anchor sizes need 0 < smallest < largest, got smallest={smallest}, largest={largest}")
    if first_stride not in (8, 16):
        raise ValueError(f"first_stride must be 8 or 16, got {first_stride}")


def _separable_head(x, outputs: int, name: str, bias: float = 0.0):
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
    x = L.BatchNormalization(epsilon=1e-3, momentum=0.9, name=f"{name}_dwbn")(x)
    x = L.ReLU(6.0, name=f"{name}_dwrelu6")(x)
    return L.Conv2D(outputs, 1, bias_initializer=keras.initializers.Constant(bias), name=f"{name}_conv")(x)


def ssdlite_mobilenet_v2(input_shape, num_classes: int, width: float = 1.0, extra_levels: int = 2,
                         extra_filters: int = 256, smallest: float = 0.15, largest: float = 0.95,
                         first_stride: int = 16):
    _check(smallest, largest, first_stride)
    backbone = mobilenet_v2(input_shape, 1, width=width)
    features = [backbone.get_layer(TAPS[s]).output for s in TAPS if s >= first_stride]
    x = features[-1]
    for k in range(extra_levels):
        filters = max(16, extra_filters // 2 ** (k // 2))
        x = conv_bn(x, filters // 2, 1, name=f"extra{k}_reduce")
        x = L.DepthwiseConv2D(3, 2, padding="same", use_bias=False, name=f"extra{k}_dwconv")(x)
        x = L.BatchNormalization(epsilon=1e-3, momentum=0.9, name=f"extra{k}_dwbn")(x)
        x = L.ReLU(6.0, name=f"extra{k}_dwrelu6")(x)
        x = conv_bn(x, filters, 1, name=f"extra{k}_expand")
        features.append(x)
    expected = feature_sizes(input_shape, extra_levels, first_stride)
    got = [tuple(f.shape[1:3]) for f in features]
    if got != expected:  # the anchors are laid out on `expected`
        raise ValueError(f"feature maps {got} differ from the anchor grid {expected}")
    per_cell = len(A.per_location((smallest, largest), RATIOS))
    boxes, scores = [], []
    for level, f in enumerate(features):
        cells = f.shape[1] * f.shape[2] * per_cell
        b = _separable_head(f, per_cell * 4, name=f"boxes{level}")
        boxes.append(L.Reshape((cells, 4), name=f"boxes{level}_flat")(b))
        s = _separable_head(f, per_cell * num_classes, name=f"classes{level}", bias=PRIOR_BIAS)
        scores.append(L.Reshape((cells, num_classes), name=f"classes{level}_flat")(s))
    box_encodings = L.Concatenate(axis=1, name=BOXES)(boxes)
    logits = L.Concatenate(axis=1, name="class_logits")(scores)
    class_scores = L.Activation("sigmoid", name=SCORES)(logits)
    return keras.Model(backbone.input, [box_encodings, class_scores], name=f"ssdlite_mobilenet_v2_{width:g}")


HEAD = Head(ssd_anchors)  # IoU matching, smooth L1 + focal loss: the base head
register("ssdlite_mobilenet_v2", "detection", ssdlite_mobilenet_v2, head=HEAD)
register("ssdlite_mnv2", "detection", ssdlite_mobilenet_v2, head=HEAD, width=0.5)
