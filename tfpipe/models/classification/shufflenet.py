"""ShuffleNet v2 (Ma et al., ECCV 2018). Published for 1.0x at 224x224x3 with 1,000 classes:
2.3M parameters and 146M multiply-adds.

Unit, stride 1: split the channels in two; one half passes, the other goes 1x1 -> 3x3 depthwise
-> 1x1; concatenate and shuffle. Stride 2: both branches downsample (3x3 depthwise stride 2 ->
1x1, and 1x1 -> 3x3 depthwise stride 2 -> 1x1), concatenate and shuffle. `width` is 0.5, 1.0,
1.5 or 2.0 (the paper's stage widths).
"""

from __future__ import annotations

from tfpipe.backend import keras
from tfpipe.models.blocks import ChannelSplit, channel_shuffle, conv_bn
from tfpipe.models.registry import register

L = keras.layers

STAGE_WIDTHS = {0.5: (48, 96, 192, 1024), 1.0: (116, 232, 464, 1024), 1.5: (176, 352, 704, 1024),
                2.0: (244, 488, 976, 2048)}
REPEATS = (4, 8, 4)


def _depthwise(x, stride: int, name: str):
    x = L.DepthwiseConv2D(3, stride, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
    return L.BatchNormalization(epsilon=1e-3, momentum=0.9, name=f"{name}_dwbn")(x)


def _branch(x, channels: int, stride: int, name: str):
    x = conv_bn(x, channels, 1, act="relu", name=f"{name}_reduce")
    x = _depthwise(x, stride, name)
    return conv_bn(x, channels, 1, act="relu", name=f"{name}_expand")


def shuffle_unit(x, channels: int, stride: int, name: str):
    half = channels // 2
    if stride == 1:
        passed, x = ChannelSplit(2, name=f"{name}_split")(x)
    else:
        passed = conv_bn(_depthwise(x, stride, f"{name}_left"), half, 1, act="relu", name=f"{name}_left")
    x = L.Concatenate(name=f"{name}_concat")([passed, _branch(x, half, stride, f"{name}_right")])
    return channel_shuffle(x, 2, name)


def shufflenet_v2(input_shape, num_classes: int, width: float = 1.0, dropout: float = 0.0):
    if width not in STAGE_WIDTHS:
        raise ValueError(f"width must be one of {sorted(STAGE_WIDTHS)}")
    *stages, last = STAGE_WIDTHS[width]
    inputs = keras.Input(input_shape, name="images")
    x = conv_bn(inputs, 24, 3, 2, act="relu", name="stem")
    x = L.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)
    for stage, (channels, repeats) in enumerate(zip(stages, REPEATS, strict=True), start=2):
        for i in range(repeats):
            x = shuffle_unit(x, channels, 2 if i == 0 else 1, name=f"stage{stage}_{i}")
    x = conv_bn(x, last, 1, act="relu", name="head")
    x = L.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = L.Dropout(dropout, name="dropout")(x)
    x = L.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, L.Softmax(name="probabilities")(x), name=f"shufflenet_v2_{width:g}")
    # stage outputs (the last layer at each size is the next stage's first 1x1, before its stride 2)
    model.stage_ends = {8: f"stage2_{REPEATS[0] - 1}_shuffle_merge", 16: f"stage3_{REPEATS[1] - 1}_shuffle_merge",
                        32: "head_relu"}
    return model


register("shufflenet_v2", "classification", shufflenet_v2)
for _width in STAGE_WIDTHS:
    register(f"shufflenet_v2_{round(_width * 10):02d}", "classification", shufflenet_v2, width=_width)
