"""Pieces the segmentation models share: bilinear upsampling (fixed or learned) and the classifier.

Resizing is TFLite's RESIZE_BILINEAR with half_pixel_centers=True and align_corners=False (Keras'
Resizing layer, i.e. tf.image.resize): the pixel-centre convention of TF2, which TFLite and the
Edge TPU compiler accept; align_corners=True is the TF1 convention, and shifts every pixel by up
to half an input pixel against models trained with the other one.
"""

from __future__ import annotations

import numpy as np

from tfpipe.backend import keras
from tfpipe.models.registry import custom_layer

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


@custom_layer
@keras.utils.register_keras_serializable(package="tfpipe")
class DepthToSpace(L.Layer):
    """Channel blocks to pixels (TFLite DEPTH_TO_SPACE); QAT passes it through (tfpipe.qat): it only
    moves already quantized values."""

    # QAT (tfpipe.qat) leaves its output alone: it only moves already quantized values
    quantize_output = False

    def __init__(self, block: int, **kwargs):
        super().__init__(**kwargs)
        self.block = block

    def call(self, inputs):
        from tfpipe.backend import tf

        return tf.nn.depth_to_space(inputs, self.block)

    def compute_output_shape(self, input_shape):
        b = self.block
        n, h, w, c = input_shape
        return (n, None if h is None else h * b, None if w is None else w * b, c // (b * b))

    def get_config(self):
        return {**super().get_config(), "block": self.block}


def subpixel_kernel(transposed: np.ndarray, stride: int, padding: str) -> np.ndarray:
    """The Conv2D kernel whose output, rearranged by DepthToSpace(stride), equals Conv2DTranspose
    with this kernel ([k, k, out, in]), stride and padding ('same' with k >= stride, or 'valid'
    with k == stride).

    Conv2DTranspose scatters x[i] * K[j] to output i*s + j - P (P = (k - s) // 2 for 'same', 0 for
    'valid'). Output q*s + p (phase p) therefore gathers x[q + t] * K[p + P - t*s] over the taps t
    where that index is inside the kernel: one small stride-1 convolution per phase, and the phases
    become the channel blocks of DepthToSpace.
    """
    k, _, out_channels, in_channels = transposed.shape
    pad = (k - stride) // 2 if padding == "same" else 0
    taps = [t for t in range(-k, k + 1) if any(0 <= p + pad - t * stride < k for p in range(stride))]
    reach = max(abs(t) for t in taps)
    size = 2 * reach + 1
    kernel = np.zeros((size, size, in_channels, stride * stride * out_channels), transposed.dtype)
    for py in range(stride):
        for px in range(stride):
            block = (py * stride + px) * out_channels
            for ty in taps:
                for tx in taps:
                    jy, jx = py + pad - ty * stride, px + pad - tx * stride
                    if 0 <= jy < k and 0 <= jx < k:
                        kernel[ty + reach, tx + reach, :, block:block + out_channels] = transposed[jy, jx].T
    return kernel


def transposed_conv(x, filters: int, kernel: int, stride: int, *, padding: str = "same", initial=None,
                    use_bias: bool = True, name: str):
    """A transposed convolution in its sub-pixel form: a stride-1 Conv2D to stride^2 x filters
    channels, then DepthToSpace. The same function as Conv2DTranspose (tested), but QAT-safe: a
    model with tfmot's quantized Conv2DTranspose converts (TF 2.21) to a .tflite without its
    signature (seen: get_signature_list() is empty, so outputs cannot be found by name), and
    tensorflow/model-optimization#771 reports wrong int8 results for it.
    `initial` is a Conv2DTranspose kernel [k, k, filters, in] to start from. The bias is one per
    phase and channel: a superset of Conv2DTranspose's one per channel."""
    if padding == "valid" and kernel != stride:
        raise ValueError("the sub-pixel form covers 'valid' only with kernel == stride")
    if padding == "same" and kernel < stride:
        raise ValueError("the sub-pixel form covers 'same' only with kernel >= stride")
    if initial is None:
        shape = (kernel, kernel, filters, x.shape[-1])
        initial = keras.initializers.GlorotUniform()(shape).numpy()
    weights = subpixel_kernel(np.asarray(initial, np.float32), stride, padding)
    layer = L.Conv2D(stride * stride * filters, weights.shape[0], padding="same", use_bias=use_bias,
                     name=f"{name}_subpixel")
    conv = layer(x)
    # Set after building rather than through a Constant initializer, which would put the array into
    # the layer's config (megabytes of JSON, and an .h5 config that QAT's loader cannot read back).
    layer.set_weights([weights, *([np.zeros(layer.filters, np.float32)] if use_bias else [])])
    return DepthToSpace(stride, name=name)(conv) if stride > 1 else conv


def learned_upsample(x, factor: int, name: str):
    """A transposed convolution by `factor` (kernel 2 x factor, 'same'), initialised to bilinear
    interpolation and trained from there, as FCN does; in the QAT-safe sub-pixel form."""
    channels = x.shape[-1]
    return transposed_conv(x, channels, 2 * factor, factor, initial=bilinear_kernel(2 * factor, channels),
                           use_bias=False, name=name)


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
