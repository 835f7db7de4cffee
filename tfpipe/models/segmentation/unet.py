"""U-Net (Ronneberger, Fischer & Brox, MICCAI 2015): a contracting path of double 3x3 convolutions
and 2x2 max-pools, an expanding path of 2x2 up-convolutions, each concatenated with the
contracting path's features at the same size (the skip connections), then double 3x3 convolutions.

The paper's widths are 64-128-256-512-1024 (`width=64`); `unet_lite` is width 16, a sixteenth
of the multiply-adds. Convolutions pad ('same') instead of the paper's valid convolutions and
crops, so the output has the input's size; BatchNorm follows each convolution. The up-convolutions
are transposed convolutions in their QAT-safe sub-pixel form (common.transposed_conv).
"""

from __future__ import annotations

from tfpipe.backend import keras
from tfpipe.models.blocks import conv_bn
from tfpipe.models.registry import register
from tfpipe.models.segmentation.common import check_size, classify, transposed_conv

L = keras.layers


def double_conv(x, filters: int, name: str):
    x = conv_bn(x, filters, 3, act="relu", name=f"{name}_a")
    return conv_bn(x, filters, 3, act="relu", name=f"{name}_b")


def unet(input_shape, num_classes: int, width: int = 64, depth: int = 4):
    check_size(input_shape, 2 ** depth, "U-Net")
    inputs = keras.Input(input_shape, name="images")
    x, skips = inputs, []
    for level in range(depth):
        x = double_conv(x, width * 2 ** level, name=f"down{level}")
        skips.append(x)
        x = L.MaxPooling2D(2, name=f"down{level}_pool")(x)
    x = double_conv(x, width * 2 ** depth, name="bottom")
    for level in reversed(range(depth)):
        filters = width * 2 ** level
        x = transposed_conv(x, filters, 2, 2, padding="valid", name=f"up{level}_upconv")
        x = L.Concatenate(name=f"up{level}_concat")([skips[level], x])
        x = double_conv(x, filters, name=f"up{level}")
    return keras.Model(inputs, classify(x, num_classes), name=f"unet_{width}")


register("unet", "segmentation", unet)
register("unet_lite", "segmentation", unet, width=16)
