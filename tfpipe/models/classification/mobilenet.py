"""MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018).

Published size at 224x224x3, width 1.0, 1,000 classes: 3.4M parameters (3,538,984 counting the
classifier, as keras.applications builds it) and 300M multiply-adds.

Inverted residual: 1x1 expansion (t x channels) -> 3x3 depthwise -> 1x1 linear projection, with
an identity shortcut when the stride is 1 and the channel count is kept. `width` scales every
layer (rounded to multiples of 8); the last 1x1 convolution keeps 1280 channels for width <= 1.
`stem_stride=1` keeps small inputs (32x32) from being reduced to 1x1 by the network's stride 32.
`output_stride` 16 or 8 (DeepLab) replaces the last strides by dilated depthwise convolutions, so
the features stay at that stride with the same weights. `se_ratio` adds a Squeeze-and-Excitation
gate after each depthwise convolution (where MobileNetV3 puts it), squeezing the expanded channels
by that ratio.
"""

from __future__ import annotations

from tfpipe.backend import keras
from tfpipe.models.blocks import conv_bn, depthwise_bn, make_divisible, squeeze_excite
from tfpipe.models.registry import register

L = keras.layers

# (expansion t, output channels c, repeats n, first stride s): Table 2 of the paper.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def inverted_residual(x, expansion: int, filters: int, stride: int, name: str, se_ratio: int | None = None,
                      dilation: int = 1):
    in_channels = x.shape[-1]
    y = conv_bn(x, expansion * in_channels, 1, name=f"{name}_expand") if expansion != 1 else x
    y = depthwise_bn(y, stride, dilation=dilation, name=name)
    if se_ratio:
        y = squeeze_excite(y, se_ratio, name)
    y = conv_bn(y, filters, 1, act=None, name=f"{name}_project")
    if stride == 1 and in_channels == filters:
        y = L.Add(name=f"{name}_add")([x, y])
    return y


def mobilenet_v2(input_shape, num_classes: int, width: float = 1.0, stem_stride: int = 2, dropout: float = 0.0,
                 se_ratio: int | None = None, output_stride: int = 32):
    if width <= 0:
        raise ValueError("width must be > 0")
    if stem_stride not in (1, 2):
        raise ValueError("stem_stride must be 1 or 2")
    if output_stride not in (8, 16, 32):
        raise ValueError("output_stride must be 8, 16 or 32")
    inputs = keras.Input(input_shape, name="images")
    x = conv_bn(inputs, make_divisible(32 * width), 3, stem_stride, name="stem")
    block, stride, dilation = 0, stem_stride, 1
    for t, c, n, s in STAGES:
        for i in range(n):
            step = s if i == 0 else 1
            rate = dilation
            if step > 1 and stride * step > output_stride:  # DeepLab: dilate instead of striding further
                step, dilation = 1, dilation * s
            else:
                stride *= step
            x = inverted_residual(x, t, make_divisible(c * width), step, name=f"block{block}", se_ratio=se_ratio,
                                  dilation=rate)
            block += 1
    x = conv_bn(x, make_divisible(1280 * width) if width > 1.0 else 1280, 1, name="head")
    x = L.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = L.Dropout(dropout, name="dropout")(x)
    x = L.Dense(num_classes, name="logits")(x)
    outputs = L.Softmax(name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"{'se_' if se_ratio else ''}mobilenet_v2_{width:g}")


register("mobilenet_v2", "classification", mobilenet_v2)
for _width in (0.35, 0.5, 0.75, 1.0, 1.4):
    register(f"mobilenet_v2_{round(_width * 100):03d}", "classification", mobilenet_v2, width=_width)
