"""Parameter and multiply-add counts, and the backbone view of a classifier.

Multiply-adds are counted as the papers count them: convolutions (grouped and depthwise included)
and fully connected layers; BatchNorm (folded into the convolution at conversion), activations,
pooling and additions are left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from tfpipe.backend import keras, tf

STRIDES = (8, 16, 32)


@contextmanager
def shapes_only() -> Iterator[None]:
    """Models built inside get zero-filled variables instead of their initializers' random draws:
    for a model built only to be sized (parameters, multiply-adds, feature shapes). The draws were
    most of `models list`'s time: 59 s of building for the 57 registered models, 37 s without them
    (FCN-8s's 134M VGG weights: 3.4 of its 3.7 s)."""
    def zeros(next_creator, **kwargs):
        shape, dtype = kwargs.get("shape"), kwargs.get("dtype") or tf.float32
        if shape is not None and callable(kwargs.get("initial_value")):
            kwargs["initial_value"] = lambda: tf.zeros(shape, dtype)
        return next_creator(**kwargs)

    with tf.variable_creator_scope(zeros):
        yield


def multiply_adds(model) -> int:
    total = 0
    for layer in model.layers:
        if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D", "Dense"):
            # the kernel holds every multiply of one output position (h x w x in/groups x out; in x out)
            positions = int(np.prod(layer.output.shape[1:-1]))  # 1 for a Dense on vectors
            total += int(np.prod(layer.weights[0].shape)) * positions
    return total


def stride_layers(model) -> dict[int, str]:
    """For strides 8, 16 and 32: the name of the last layer whose 4-D output is at that stride -
    the end of that stage. 'At stride s' means a side in (ceil(n/2s), ceil(n/s)] ('same' padding
    gives ceil(n/s) exactly, 'valid' pooling a little less), or 1 once ceil(n/s) is 1."""
    height, width = model.input_shape[1:3]
    found: dict[int, str] = {}
    for layer in model.layers:
        shape = getattr(layer.output, "shape", ())  # a split has a list of outputs
        if len(shape) != 4:
            continue
        for stride in STRIDES:
            if all(_at_stride(n, side, stride) for n, side in ((height, shape[1]), (width, shape[2]))):
                found[stride] = layer.name
    return found


def feature_layers(model) -> dict[int, str]:
    """Stride -> layer name of the feature map a head takes: the family's own `model.stage_ends`
    where it names them (AlexNet's off-grid sizes, ResNet's stage outputs), else `stride_layers`."""
    return {**stride_layers(model), **dict(getattr(model, "stage_ends", {}))}


def _at_stride(n: int, side: int, stride: int) -> bool:
    target, half = -(-n // stride), -(-n // (2 * stride))
    return (half if half < target else 0) < side <= target


def backbone(model, strides: tuple[int, ...] = STRIDES):
    """The classifier cut into a feature extractor: one output per stride (detection and
    segmentation heads start here), at the layers `feature_layers` names. A stride the network
    does not produce is an error naming it."""
    found = feature_layers(model)
    missing = [s for s in strides if s not in found]
    if missing:
        raise ValueError(f"{model.name} has no feature map at stride {missing} for input {model.input_shape[1:3]} "
                         f"(found {sorted(found)})")
    return keras.Model(model.input, [model.get_layer(found[s]).output for s in strides], name=f"{model.name}_backbone")
