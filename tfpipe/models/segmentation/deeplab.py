"""DeepLabv3+ (Chen et al., ECCV 2018) on MobileNetV2 at output stride 16 or 8.

The backbone keeps its features at the output stride with dilated depthwise convolutions
(mobilenet_v2's `output_stride`). ASPP: a 1x1 convolution, three 3x3 atrous convolutions at rates
6, 12, 18 (doubled at output stride 8), and image pooling (global average -> 1x1 conv -> resized
back), concatenated and projected by a 1x1 convolution. Decoder: the ASPP output resized to the
stride-4 low-level features (reduced to 48 channels by a 1x1 convolution), concatenated, two 3x3
convolutions, the classifier, and a bilinear resize to the input.
"""

from __future__ import annotations

from tfpipe.backend import keras
from tfpipe.models.blocks import conv_bn
from tfpipe.models.classification.mobilenet import mobilenet_v2
from tfpipe.models.registry import register
from tfpipe.models.segmentation.common import check_size, resize_to

L = keras.layers
RATES = {16: (6, 12, 18), 8: (12, 24, 36)}


def aspp(x, filters: int, rates: tuple[int, ...], name: str = "aspp"):
    h, w = x.shape[1:3]
    branches = [conv_bn(x, filters, 1, act="relu", name=f"{name}_1x1")]
    for rate in rates:
        branches.append(conv_bn(x, filters, 3, act="relu", dilation=rate, name=f"{name}_rate{rate}"))
    pooled = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pooled = conv_bn(pooled, filters, 1, act="relu", name=f"{name}_pool_1x1")
    branches.append(resize_to(pooled, (h, w), name=f"{name}_pool_resize"))
    x = L.Concatenate(name=f"{name}_concat")(branches)
    return conv_bn(x, filters, 1, act="relu", name=f"{name}_project")


def deeplab_v3_plus(input_shape, num_classes: int, output_stride: int = 16, width: float = 1.0,
                    filters: int = 256, low_level_filters: int = 48):
    if output_stride not in RATES:
        raise ValueError(f"output_stride must be one of {sorted(RATES)}")
    check_size(input_shape, output_stride, "DeepLabv3+")
    backbone = mobilenet_v2(input_shape, 1, width=width, output_stride=output_stride)
    high = backbone.get_layer("block16_project_bn").output  # the last block, before the 1280-wide head
    low = backbone.get_layer("block2_add").output  # the end of the stride-4 stage
    x = aspp(high, filters, RATES[output_stride])
    x = resize_to(x, tuple(low.shape[1:3]), name="decoder_upsample")
    low = conv_bn(low, low_level_filters, 1, act="relu", name="decoder_low")
    x = L.Concatenate(name="decoder_concat")([x, low])
    x = conv_bn(x, filters, 3, act="relu", name="decoder_a")
    x = conv_bn(x, filters, 3, act="relu", name="decoder_b")
    x = L.Conv2D(num_classes, 1, name="classes")(x)
    x = resize_to(x, tuple(input_shape[:2]), name="upsample")
    return keras.Model(backbone.input, L.Softmax(name="probabilities")(x), name=f"deeplab_v3_plus_os{output_stride}")


register("deeplab_v3_plus", "segmentation", deeplab_v3_plus)
register("deeplab_v3_plus_mnv2_os16", "segmentation", deeplab_v3_plus, output_stride=16)
register("deeplab_v3_plus_mnv2_os8", "segmentation", deeplab_v3_plus, output_stride=8)
