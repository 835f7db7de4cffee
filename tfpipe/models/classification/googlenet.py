"""GoogLeNet / Inception v1 (Szegedy et al., CVPR 2015) in torchvision's form: every convolution
is conv + BatchNorm + ReLU (`batch_norm=False` drops the BN, as in the paper), and the "5x5"
branch uses a 3x3 kernel, as torchvision's weights do. Published: about 6.6M parameters and 1.5G
multiply-adds at 224x224x3 with 1,000 classes, without the auxiliary classifiers.

`aux_classifiers=True` adds the paper's two auxiliary classifiers on inception 4a and 4d (average
pool -> 1x1 conv 128 -> FC 1024 -> dropout 0.7 -> FC classes) as extra outputs `aux1` and `aux2`.
The trainer weighs their losses by 0.3 and saves the model without them: they only serve training.
The paper's 5x5/3 pool gives 4x4 at 224; here the window is a quarter of the map's side, so any
input size works and 224 still gives 4x4 (torchvision pools adaptively to 4x4 for the same reason).

Inception module: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | 3x3 max-pool -> 1x1, concatenated on channels.
"""

from __future__ import annotations

from tfpipe.backend import keras
from tfpipe.models.blocks import activation
from tfpipe.models.registry import register

L = keras.layers

# (1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool projection): Table 1 of the paper.
MODULES = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}


def _conv(x, filters: int, kernel: int, stride: int = 1, *, batch_norm: bool, name: str):
    x = L.Conv2D(filters, kernel, stride, padding="same", use_bias=not batch_norm, name=f"{name}_conv")(x)
    if batch_norm:
        x = L.BatchNormalization(epsilon=1e-3, momentum=0.9, name=f"{name}_bn")(x)
    return activation(x, "relu", name)


def inception(x, widths: tuple[int, ...], *, batch_norm: bool, name: str):
    c1, r3, c3, r5, c5, pool = widths
    b1 = _conv(x, c1, 1, batch_norm=batch_norm, name=f"{name}_1x1")
    b2 = _conv(_conv(x, r3, 1, batch_norm=batch_norm, name=f"{name}_3x3_reduce"), c3, 3,
               batch_norm=batch_norm, name=f"{name}_3x3")
    b3 = _conv(_conv(x, r5, 1, batch_norm=batch_norm, name=f"{name}_5x5_reduce"), c5, 3,
               batch_norm=batch_norm, name=f"{name}_5x5")
    b4 = L.MaxPooling2D(3, 1, padding="same", name=f"{name}_pool")(x)
    b4 = _conv(b4, pool, 1, batch_norm=batch_norm, name=f"{name}_pool_proj")
    return L.Concatenate(name=f"{name}_concat")([b1, b2, b3, b4])


def auxiliary_classifier(x, num_classes: int, *, batch_norm: bool, name: str):
    window = tuple(max(1, side // 4) for side in x.shape[1:3])
    x = L.AveragePooling2D(window, window, name=f"{name}_pool")(x)
    x = _conv(x, 128, 1, batch_norm=batch_norm, name=f"{name}_conv")
    x = L.Flatten(name=f"{name}_flatten")(x)
    x = L.Dense(1024, activation="relu", name=f"{name}_fc")(x)
    x = L.Dropout(0.7, name=f"{name}_dropout")(x)
    return L.Softmax(name=name)(L.Dense(num_classes, name=f"{name}_logits")(x))


def googlenet(input_shape, num_classes: int, batch_norm: bool = True, dropout: float = 0.4,
              aux_classifiers: bool = False):
    inputs = keras.Input(input_shape, name="images")
    x = _conv(inputs, 64, 7, 2, batch_norm=batch_norm, name="conv1")
    x = L.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = _conv(x, 64, 1, batch_norm=batch_norm, name="conv2_reduce")
    x = _conv(x, 192, 3, batch_norm=batch_norm, name="conv2")
    x = L.MaxPooling2D(3, 2, padding="same", name="pool2")(x)
    aux = []
    for module in ("3a", "3b", "pool3", "4a", "4b", "4c", "4d", "4e", "pool4", "5a", "5b"):
        if module.startswith("pool"):
            x = L.MaxPooling2D(3, 2, padding="same", name=module)(x)
        else:
            x = inception(x, MODULES[module], batch_norm=batch_norm, name=f"inception{module}")
        if aux_classifiers and module in ("4a", "4d"):
            aux.append(auxiliary_classifier(x, num_classes, batch_norm=batch_norm, name=f"aux{len(aux) + 1}"))
    x = L.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = L.Dropout(dropout, name="dropout")(x)
    x = L.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, [L.Softmax(name="probabilities")(x), *aux], name="googlenet")


register("googlenet", "classification", googlenet)
