"""What a trained CNN's units respond to: the layers worth looking at, the receptive field of each
unit, the validation images that excite each channel most (Zeiler & Fergus 2014, the lecture's
"maximally activating patches") and the first convolution's filters.

Receptive fields are computed from the layer graph (the usual recurrence over kernel, stride,
dilation and padding; Araujo et al., Distill 2019), not by back-propagating from each unit: the
gradient's support is the *effective* field, which ReLUs that happen to be off shrink image by
image. A test checks the recurrence against the gradient's support on a linear network, where the
two are the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tfpipe.backend import keras

# Layers that change no spatial geometry whatever their inputs (elementwise, normalization,
# activation, channel mixing); anything else with a 4-D output of a new size is not understood
# and gets a field covering the whole input, which is never smaller than the truth.
_WINDOWED = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D,
             keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
ACTIVATIONS = (keras.layers.ReLU, keras.layers.Activation, keras.layers.LeakyReLU, keras.layers.PReLU,
                keras.layers.ELU, keras.layers.Softmax)


@dataclass(frozen=True)
class Field:
    """Where a layer's units look in the input image, per axis (rows, columns): unit (i, j) is
    centred at start + (i, j) * jump input pixels (pixel p spans [p, p+1)) and sees size pixels."""

    size: tuple[float, float]
    jump: tuple[float, float]
    start: tuple[float, float]

    def crop(self, row: int, col: int, image_hw: tuple[int, int]) -> tuple[int, int, int, int]:
        """The field of unit (row, col), clipped to the image: (top, left, bottom, right), exclusive."""
        box = []
        for unit, size, jump, start, limit in zip((row, col), self.size, self.jump, self.start, image_hw, strict=True):
            centre = start + unit * jump
            box.append((max(0, math.floor(centre - size / 2 + 1e-6)), min(limit, math.ceil(centre + size / 2 - 1e-6))))
        (top, bottom), (left, right) = box
        return top, left, bottom, right


def inbound(layer) -> list:
    node = layer.inbound_nodes[0]
    layers = node.inbound_layers
    return list(layers) if isinstance(layers, (list, tuple)) else [layers]


def spatial_size(shape) -> tuple[int, int] | None:
    shape = shape[0] if isinstance(shape, list) and len(shape) == 1 else shape
    if isinstance(shape, tuple) and len(shape) == 4 and shape[1] and shape[2]:
        return int(shape[1]), int(shape[2])
    return None


def _window(layer) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], str]:
    if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
        return tuple(layer.pool_size), tuple(layer.strides), (1, 1), layer.padding
    return tuple(layer.kernel_size), tuple(layer.strides), tuple(layer.dilation_rate), layer.padding


def receptive_fields(model) -> dict[str, Field]:
    """The receptive field of every layer with a 4-D output, by layer name. Branches that meet
    (Add, Concatenate) take the largest field; a layer whose output has no spatial axes (global
    pooling, Dense) and any layer not understood sees the whole input."""
    image_hw = spatial_size(model.input_shape)
    whole = Field((float(image_hw[0]), float(image_hw[1])), (1.0, 1.0),
                  (image_hw[0] / 2, image_hw[1] / 2))
    fields: dict[str, Field] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            fields[layer.name] = Field((1.0, 1.0), (1.0, 1.0), (0.5, 0.5))
            continue
        sources = [fields.get(source.name, whole) for source in inbound(layer)]
        here = max(sources, key=lambda f: f.size[0] * f.size[1])
        out_hw = spatial_size(layer.output_shape)
        in_hw = spatial_size(layer.input_shape if not isinstance(layer.input_shape, list) else layer.input_shape[0])
        if out_hw is None:
            fields[layer.name] = whole
        elif isinstance(layer, _WINDOWED) and in_hw:
            kernel, strides, dilation, padding = _window(layer)
            size, jump, start = [], [], []
            for axis in range(2):
                k = dilation[axis] * (kernel[axis] - 1) + 1
                s, n = strides[axis], in_hw[axis]
                pad = max((math.ceil(n / s) - 1) * s + k - n, 0) // 2 if padding == "same" else 0
                size.append(here.size[axis] + (k - 1) * here.jump[axis])
                start.append(here.start[axis] + ((k - 1) / 2 - pad) * here.jump[axis])
                jump.append(here.jump[axis] * s)
            fields[layer.name] = Field(tuple(size), tuple(jump), tuple(start))
        elif isinstance(layer, keras.layers.ZeroPadding2D):
            (top, _), (left, _) = layer.padding
            fields[layer.name] = Field(here.size, here.jump, (here.start[0] - top * here.jump[0],
                                                              here.start[1] - left * here.jump[1]))
        elif in_hw == out_hw:
            fields[layer.name] = here
        else:  # resampling the field recurrence does not model: the whole input, never too small
            fields[layer.name] = whole
    return fields


_RECTIFYING = ("relu", "relu6", "elu", "selu", "gelu", "swish", "silu", "leaky_relu", "hard_swish")


def _rectifier(layer) -> bool:
    if isinstance(layer, (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.PReLU, keras.layers.ELU)):
        return True
    return isinstance(layer, keras.layers.Activation) and getattr(layer.activation, "__name__", "") in _RECTIFYING


def stage_layers(model) -> list[str]:
    """One layer per stage, a stage being the layers at one spatial resolution: its last rectifier
    (ReLU, LeakyReLU, ...; not a detector head's sigmoid at the same size), else its last
    activation, else its last layer. In network order, shallow to deep."""
    stages: dict[tuple[int, int], list] = {}
    for layer in model.layers:
        hw = spatial_size(layer.output_shape)
        if hw is not None and not isinstance(layer, keras.layers.InputLayer):
            stages.setdefault(hw, []).append(layer)
    chosen = []
    for layers in stages.values():
        rectifiers = [la for la in layers if _rectifier(la)]
        activations = [la for la in layers if isinstance(la, ACTIVATIONS)]
        chosen.append((rectifiers or activations or layers)[-1].name)
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    return sorted(chosen, key=order.__getitem__)


def first_convolution(model):
    """The first Conv2D (or depthwise / separable) layer in network order: the filters that look at pixels."""
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            return layer
    return None


def activation_model(model, names: list[str]):
    """A model from the input to the named layers' outputs (one array per name)."""
    return keras.Model(model.inputs, [model.get_layer(name).output for name in names])


class TopK:
    """The k images with the largest activation of each channel over a stream of batches, and
    where in the feature map it peaks. An image's activation for a channel is its maximum over
    positions; ties go to the earlier image, so the result is that of one sort of the whole split."""

    def __init__(self, k: int, channels: int):
        self.k = k
        self.scores = np.full((channels, 0), -np.inf, np.float64)
        self.images = np.zeros((channels, 0), np.int64)
        self.rows = np.zeros((channels, 0), np.int64)
        self.cols = np.zeros((channels, 0), np.int64)

    def add(self, activations: np.ndarray, first_index: int) -> None:
        """activations [B, H, W, C] (or [B, C], or [B, N, C]: rows index N) of images first_index ..
        first_index + B - 1."""
        b, c = activations.shape[0], activations.shape[-1]
        w = activations.shape[2] if activations.ndim == 4 else 1
        flat = activations.reshape(b, -1, c)
        where = flat.argmax(axis=1)  # [B, C]: the first position of the maximum
        peak = np.take_along_axis(flat, where[:, None, :], axis=1)[:, 0, :]
        scores = np.concatenate([self.scores, peak.T.astype(np.float64)], axis=1)
        images = np.concatenate([self.images, np.broadcast_to(first_index + np.arange(b), (c, b))], axis=1)
        rows = np.concatenate([self.rows, (where // w).T], axis=1)
        cols = np.concatenate([self.cols, (where % w).T], axis=1)
        keep = np.argsort(-scores, axis=1, kind="stable")[:, : self.k]  # earlier columns win ties
        self.scores, self.images, self.rows, self.cols = (np.take_along_axis(x, keep, axis=1)
                                                          for x in (scores, images, rows, cols))


def top_images(model, layers: list[str], inputs: np.ndarray, k: int, batch_size: int = 64,
               progress=None) -> dict[str, TopK]:
    """For every named layer, the TopK of each of its channels over `inputs` (preprocessed)."""
    probe = activation_model(model, layers)
    found: dict[str, TopK] = {}
    for start in range(0, len(inputs), batch_size):
        outputs = probe(inputs[start : start + batch_size], training=False)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        for name, values in zip(layers, outputs, strict=True):
            values = np.asarray(values)
            if name not in found:
                found[name] = TopK(k, values.shape[-1])
            found[name].add(values, start)
        if progress is not None:
            progress.update(min(start + batch_size, len(inputs)))
    return found
