"""Pieces the segmentation models share: bilinear upsampling (fixed or learned) and the classifier.

Resizing is TFLite's RESIZE_BILINEAR with half_pixel_centers=True and align_corners=False (Keras'
Resizing layer, i.e. tf.image.resize): the pixel-centre convention of TF2, which TFLite and the
Edge TPU compiler accept; align_corners=True is the TF1 convention, and shifts every pixel by up
to half an input pixel against models trained with the other one.
"""

from __future__ import annotations

import numpy as np

from tfpipe.backend import keras

L = keras.layers


def bilinear_kernel(size: int, channels: int) -> np.ndarray:
    """A [size, size, channels, channels] Conv2DTranspose kernel that upsamples each channel on its
    own by bilinear interpolation (FCN's initialisation): factor (size + 1) // 2."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    grid = np.arange(size)
    weights = 1 - np.abs(grid - center) / factor
    kernel = np.zeros((size, size, channels, channels), np.float32)
    for c in range(channels):
        kernel[:, :, c, c] = np.outer(weights, weights)
    return kernel


def learned_upsample(x, factor: int, name: str):
    """Conv2DTranspose by `factor` (kernel 2 x factor), initialised to bilinear interpolation and
    trained from there, as FCN does. 'same' padding gives exactly factor x the size."""
    channels = x.shape[-1]
    layer = L.Conv2DTranspose(channels, 2 * factor, factor, padding="same", use_bias=False, name=name,
                              kernel_initializer=keras.initializers.Constant(bilinear_kernel(2 * factor, channels)))
    return layer(x)


def resize_to(x, size: tuple[int, int], name: str):
    """Fixed bilinear resize to `size` (height, width): RESIZE_BILINEAR, half-pixel centres."""
    if tuple(x.shape[1:3]) == tuple(size):
        return x
    return L.Resizing(*size, interpolation="bilinear", name=name)(x)


def classify(x, num_classes: int, name: str = "classes"):
    """1x1 convolution to the class scores, then a per-pixel softmax named `probabilities`."""
    x = L.Conv2D(num_classes, 1, name=name)(x)
    return L.Softmax(name="probabilities")(x)


def check_size(input_shape, multiple: int, model: str) -> None:
    h, w = input_shape[:2]
    if h % multiple or w % multiple:
        raise ValueError(f"{model} needs an input size divisible by {multiple}, got {h}x{w}")
