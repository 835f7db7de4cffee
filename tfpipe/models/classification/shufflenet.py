"""ShuffleNet v2 (Ma et al., ECCV 2018), and v1 with grouped convolutions (below). v2 is published
for 1.0x at 224x224x3 with 1,000 classes: 2.3M parameters and 146M multiply-adds.

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


def stem(input_shape):
    """Both versions' stem: 3x3 convolution to 24 channels at stride 2, then a 3x3/2 max-pool."""
    inputs = keras.Input(input_shape, name="images")
    x = conv_bn(inputs, 24, 3, 2, act="relu", name="stem")
    return inputs, L.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)


def shufflenet_v2(input_shape, num_classes: int, width: float = 1.0, dropout: float = 0.0):
    if width not in STAGE_WIDTHS:
        raise ValueError(f"width must be one of {sorted(STAGE_WIDTHS)}")
    *stages, last = STAGE_WIDTHS[width]
    inputs, x = stem(input_shape)
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


# --- ShuffleNet v1 (Zhang et al., CVPR 2018) ---------------------------------------------------------
# Published for 1.0x with g = 3 at 224x224x3, 1,000 classes: 140M multiply-adds (the paper's
# Table 2 "MFLOPs") and 1.87M parameters (OpenMMLab's count of the same network).
#
# Unit: 1x1 grouped convolution to a quarter of the output channels -> channel shuffle -> 3x3
# depthwise (stride 1 or 2, no ReLU) -> 1x1 grouped convolution back up. Stride 1: add the input,
# then ReLU. Stride 2: concatenate a 3x3 average pool of the input, then ReLU, so the branch makes
# the output's channels minus the input's. The first 1x1 of stage 2 is not grouped (24 input
# channels are too few to split).

V1_STAGE_WIDTHS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088),
                   8: (384, 768, 1536)}


def shuffle_unit_v1(x, channels: int, stride: int, groups: int, name: str, first_groups: int | None = None):
    in_channels = x.shape[-1]
    branch_channels = channels - in_channels if stride == 2 else channels
    first = groups if first_groups is None else first_groups
    y = conv_bn(x, channels // 4, 1, act="relu", groups=first, name=f"{name}_reduce")
    if first > 1:
        y = channel_shuffle(y, first, name)
    y = _depthwise(y, stride, name)
    y = conv_bn(y, branch_channels, 1, act=None, groups=groups, name=f"{name}_expand")
    if stride == 2:
        shortcut = L.AveragePooling2D(3, 2, padding="same", name=f"{name}_shortcut_pool")(x)
        y = L.Concatenate(name=f"{name}_concat")([shortcut, y])
    else:
        y = L.Add(name=f"{name}_add")([x, y])
    return L.ReLU(name=f"{name}_out_relu")(y)


def shufflenet_v1(input_shape, num_classes: int, groups: int = 3, dropout: float = 0.0):
    if groups not in V1_STAGE_WIDTHS:
        raise ValueError(f"groups must be one of {sorted(V1_STAGE_WIDTHS)}")
    inputs, x = stem(input_shape)
    for stage, (channels, repeats) in enumerate(zip(V1_STAGE_WIDTHS[groups], REPEATS, strict=True), start=2):
        for i in range(repeats):
            x = shuffle_unit_v1(x, channels, 2 if i == 0 else 1, groups, name=f"stage{stage}_{i}",
                                first_groups=1 if stage == 2 and i == 0 else None)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = L.Dropout(dropout, name="dropout")(x)
    x = L.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, L.Softmax(name="probabilities")(x), name=f"shufflenet_v1_g{groups}")
    # stage outputs (after them, the next stage's first 1x1 still runs at the old size)
    model.stage_ends = {stride: f"stage{stage}_{REPEATS[stage - 2] - 1}_out_relu"
                        for stride, stage in ((8, 2), (16, 3), (32, 4))}
    return model


register("shufflenet_v1", "classification", shufflenet_v1)
register("shufflenet_v1_g3", "classification", shufflenet_v1, groups=3)
