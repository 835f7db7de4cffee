"""MobileNetV1 (Howard et al., 2017): a 3x3 stem, then 13 depthwise-separable blocks (3x3
depthwise + 1x1 pointwise, each with BN and ReLU6). Published at 224x224x3, width 1.0, 1,000
classes: 4.2M parameters and 569M multiply-adds. `width` (alpha) scales every layer's channels.
"""

from __future__ import annotations

from tfpipe.backend import keras
from tfpipe.models.blocks import conv_bn, depthwise_bn
from tfpipe.models.registry import register

L = keras.layers

# (pointwise channels, depthwise stride): Table 1 of the paper.
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
          (512, 1), (1024, 2), (1024, 1))


def mobilenet_v1(input_shape, num_classes: int, width: float = 1.0, dropout: float = 0.001):
    if width <= 0:
        raise ValueError("width must be > 0")
    inputs = keras.Input(input_shape, name="images")
    x = conv_bn(inputs, int(32 * width), 3, 2, name="stem")
    for i, (channels, stride) in enumerate(BLOCKS):
        x = depthwise_bn(x, stride, name=f"block{i}")
        x = conv_bn(x, int(channels * width), 1, name=f"block{i}_pointwise")
    x = L.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = L.Dropout(dropout, name="dropout")(x)
    x = L.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, L.Softmax(name="probabilities")(x), name=f"mobilenet_v1_{width:g}")


register("mobilenet_v1", "classification", mobilenet_v1)
for _width in (0.25, 0.5, 0.75, 1.0):
    register(f"mobilenet_v1_{round(_width * 100):03d}", "classification", mobilenet_v1, width=_width)
