"""VGG-16 and VGG-19 (Simonyan & Zisserman, ICLR 2015, configurations D and E): 3x3 convolutions
in five stages of 64-128-256-512-512 channels, 2x2 max-pooling, and three fully connected layers.
Published: 138M / 144M parameters, 15.5G / 19.6G multiply-adds at 224x224x3 with 1,000 classes.

`batch_norm=True` adds BatchNorm after every convolution (VGG-BN); `hidden` shrinks the two
4096-wide layers for small inputs (the classifier holds 124M of VGG-16's 138M parameters).
"""

from __future__ import annotations

from tfpipe.backend import keras
from tfpipe.models.blocks import activation
from tfpipe.models.registry import register

L = keras.layers

DEPTHS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
CHANNELS = (64, 128, 256, 512, 512)


def vgg(input_shape, num_classes: int, depth: int = 16, batch_norm: bool = False, dropout: float = 0.5,
        hidden: int = 4096):
    if depth not in DEPTHS:
        raise ValueError(f"depth must be one of {sorted(DEPTHS)}")
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    for stage, (repeats, channels) in enumerate(zip(DEPTHS[depth], CHANNELS, strict=True), start=1):
        for i in range(1, repeats + 1):
            name = f"block{stage}_conv{i}"
            x = L.Conv2D(channels, 3, padding="same", use_bias=not batch_norm, name=name)(x)
            if batch_norm:
                x = L.BatchNormalization(epsilon=1e-3, momentum=0.9, name=f"{name}_bn")(x)
            x = activation(x, "relu", name)
        x = L.MaxPooling2D(2, 2, padding="same", name=f"block{stage}_pool")(x)
    x = L.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = L.Dense(hidden, activation="relu", name=f"fc{i}")(x)
        x = L.Dropout(dropout, name=f"dropout{i}")(x)
    x = L.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, L.Softmax(name="probabilities")(x), name=f"vgg{depth}{'_bn' if batch_norm else ''}")


register("vgg", "classification", vgg)
for _depth in DEPTHS:
    register(f"vgg{_depth}", "classification", vgg, depth=_depth)
    register(f"vgg{_depth}_bn", "classification", vgg, depth=_depth, batch_norm=True)
