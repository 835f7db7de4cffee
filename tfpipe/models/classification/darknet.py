"""Darknet-19 (YOLO9000, Redmon & Farhadi, CVPR 2017) and Darknet-53 (YOLOv3, 2018), the YOLO
backbones. Every convolution is conv + BatchNorm + LeakyReLU(0.1).

Darknet-19: 3x3 convolutions that double the channels after each 2x2 max-pool, with 1x1
convolutions halving them in between, then a 1x1 convolution to the classes and global average
pooling (no fully connected layer). The paper counts 5.58 billion operations at 224x224, that is
2 per multiply-add (Darknet's "BFLOPs"): 2.79G multiply-adds.

Darknet-53: a stride-2 3x3 convolution opens each stage, followed by 1, 2, 8, 8, 4 residual
blocks (1x1 halving, 3x3 restoring, addition), then global pooling and a fully connected layer.
The paper counts 18.7 billion operations at 256x256: 9.35G multiply-adds; 41.6M parameters with
1,000 classes.
"""

from __future__ import annotations

from tfpipe.backend import keras
from tfpipe.models.blocks import conv_bn
from tfpipe.models.registry import register

L = keras.layers

# Darknet-19 after the 32-channel stem: per stage, the filters of its convolutions; each stage
# starts with a 2x2 max-pool, and the 3x3/1x1 kernels alternate.
DARKNET19_STAGES = ((64,), (128, 64, 128), (256, 128, 256), (512, 256, 512, 256, 512),
                    (1024, 512, 1024, 512, 1024))
DARKNET53_REPEATS = (1, 2, 8, 8, 4)


def darknet19(input_shape, num_classes: int, dropout: float = 0.0):
    inputs = keras.Input(input_shape, name="images")
    x = conv_bn(inputs, 32, 3, act="leaky", name="stem")
    for stage, filters in enumerate(DARKNET19_STAGES, start=1):
        x = L.MaxPooling2D(2, 2, padding="same", name=f"stage{stage}_pool")(x)
        for i, f in enumerate(filters):
            x = conv_bn(x, f, 3 if i % 2 == 0 else 1, act="leaky", name=f"stage{stage}_{i}")
    if dropout:
        x = L.Dropout(dropout, name="dropout")(x)
    # The paper's classifier: a 1x1 convolution to the classes at every position, then the average.
    x = L.Conv2D(num_classes, 1, name="classes")(x)
    x = L.GlobalAveragePooling2D(name="logits")(x)
    model = keras.Model(inputs, L.Softmax(name="probabilities")(x), name="darknet19")
    # the last 3x3 convolution of stages 3-5 (at stride 32 the class convolution comes after it)
    model.stage_ends = {stride: f"stage{stage}_{len(DARKNET19_STAGES[stage - 1]) - 1}_leaky"
                        for stride, stage in ((8, 3), (16, 4), (32, 5))}
    return model


def residual(x, name: str):
    channels = x.shape[-1]
    y = conv_bn(x, channels // 2, 1, act="leaky", name=f"{name}_1")
    y = conv_bn(y, channels, 3, act="leaky", name=f"{name}_2")
    return L.Add(name=f"{name}_add")([x, y])


def darknet53(input_shape, num_classes: int, dropout: float = 0.0):
    inputs = keras.Input(input_shape, name="images")
    x = conv_bn(inputs, 32, 3, act="leaky", name="stem")
    for stage, repeats in enumerate(DARKNET53_REPEATS, start=1):
        # Darknet pads stride-2 convolutions on the top-left as well ('same' pads bottom-right
        # first); the shapes and counts are equal, only the sampling grid moves by one pixel.
        x = conv_bn(x, 64 * 2 ** (stage - 1), 3, 2, act="leaky", name=f"stage{stage}_down")
        for i in range(repeats):
            x = residual(x, name=f"stage{stage}_{i}")
    x = L.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = L.Dropout(dropout, name="dropout")(x)
    x = L.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, L.Softmax(name="probabilities")(x), name="darknet53")


register("darknet19", "classification", darknet19)
register("darknet53", "classification", darknet53)
