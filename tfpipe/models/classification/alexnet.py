"""AlexNet (Krizhevsky et al., NIPS 2012), as the one-tower version torchvision and the lectures
use: 61.1M parameters and 0.71G multiply-adds at 224x224x3 with 1,000 classes.

The 11x11 stride-4 stem pads 2 pixels (55x55 at 224, as torchvision). Max-pooling is 3x3 stride 2
'valid' as in the paper, switched to 'same' once the map is smaller than the window, so any input
of at least 32 pixels builds. Dropout 0.5 before both hidden fully connected layers.
"""

from __future__ import annotations

from tfpipe.backend import keras
from tfpipe.models.registry import register

L = keras.layers


def _pool(x, name: str):
    small = min(x.shape[1], x.shape[2]) < 3
    return L.MaxPooling2D(3, 2, padding="same" if small else "valid", name=name)(x)


def alexnet(input_shape, num_classes: int, dropout: float = 0.5, hidden: int = 4096):
    inputs = keras.Input(input_shape, name="images")
    x = L.ZeroPadding2D(2, name="conv1_pad")(inputs)
    x = L.Conv2D(64, 11, 4, activation="relu", name="conv1")(x)
    x = _pool(x, "pool1")
    x = L.Conv2D(192, 5, padding="same", activation="relu", name="conv2")(x)
    x = _pool(x, "pool2")
    x = L.Conv2D(384, 3, padding="same", activation="relu", name="conv3")(x)
    x = L.Conv2D(256, 3, padding="same", activation="relu", name="conv4")(x)
    x = L.Conv2D(256, 3, padding="same", activation="relu", name="conv5")(x)
    x = _pool(x, "pool5")
    x = L.Flatten(name="flatten")(x)
    for i in (6, 7):
        x = L.Dropout(dropout, name=f"dropout{i}")(x)
        x = L.Dense(hidden, activation="relu", name=f"fc{i}")(x)
    x = L.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, L.Softmax(name="probabilities")(x), name="alexnet")
    # 55, 27, 13, 6 at 224 are off the 1/8, 1/16, 1/32 grid, and collapse to 1 early at small sizes
    model.stage_ends = {8: "conv2", 16: "conv5", 32: "pool5"}
    return model


register("alexnet", "classification", alexnet)
