"""SegNet (Badrinarayanan, Kendall & Cipolla, TPAMI 2017): a VGG-16 encoder whose max-pools
remember where each maximum was, and a mirrored decoder that max-unpools to those positions before
its convolutions.

Max-unpooling with builtin TFLite ops only (MaxPoolWithArgmax is not one): MaxUnpooling2D takes the
encoder features before the pool and the decoder's values at the pooled size. It max-pools the
features again and repeats the maxima and the values to the full size (RESIZE_NEAREST_NEIGHBOR);
a position is a window's argmax where its feature equals the maximum (EQUAL) and no earlier
position of the window (row-major, as MaxPoolWithArgmax counts) does (boolean logic on the four
positions, taken by STRIDED_SLICE). The value goes there, zero elsewhere (SELECT_V2), and
DEPTH_TO_SPACE interleaves the four positions back. Windows of all-zero ReLU outputs are common,
so the tie rule matters. Only booleans and the quantized values flow through it, so int8 models
stay integer.
"""

from __future__ import annotations

from tfpipe.backend import keras
from tfpipe.models.blocks import conv_bn
from tfpipe.models.registry import custom_layer, register
from tfpipe.models.segmentation.common import check_size, classify

L = keras.layers
VGG16_STAGES = (2, 2, 3, 3, 3)  # convolutions per stage; channels 64, 128, 256, 512, 512 at width 64


@custom_layer
@keras.utils.register_keras_serializable(package="tfpipe")
class MaxUnpooling2D(L.Layer):
    """[features before a 2x2/2 max-pool, values at the pooled size] -> each value at its window's
    argmax in the features, zeros elsewhere."""

    # QAT (tfpipe.qat) leaves its output alone: its input's quantized values, or zero
    quantize_output = False

    def call(self, inputs):
        from tfpipe.backend import tf

        before, values = inputs
        size = tf.shape(before)[1:3]
        maxima = tf.image.resize(tf.nn.max_pool2d(before, 2, 2, "VALID"), size, method="nearest")
        is_max = tf.equal(before, maxima)
        # the window's four positions in row-major order, each at the pooled size (booleans)
        corners = [is_max[:, dy::2, dx::2] for dy in (0, 1) for dx in (0, 1)]
        placed, taken = [], tf.zeros_like(corners[0])
        zeros = tf.zeros_like(values)
        for corner in corners:
            placed.append(tf.where(tf.logical_and(corner, tf.logical_not(taken)), values, zeros))
            taken = tf.logical_or(taken, corner)
        # interleave back to the full size: channel block k of DEPTH_TO_SPACE is position k
        return tf.nn.depth_to_space(tf.concat(placed, axis=-1), 2)

    def compute_output_shape(self, input_shape):
        before, values = input_shape
        return (*before[:-1], values[-1])


def segnet(input_shape, num_classes: int, width: int = 64, stages: int = 5):
    if not 1 <= stages <= 5:
        raise ValueError("stages must be 1 to 5")
    check_size(input_shape, 2 ** stages, "SegNet")
    inputs = keras.Input(input_shape, name="images")
    x, saved = inputs, []
    channels = [width * min(2 ** i, 8) for i in range(stages)]
    for stage in range(stages):
        for i in range(VGG16_STAGES[stage]):
            x = conv_bn(x, channels[stage], 3, act="relu", name=f"enc{stage}_{i}")
        saved.append(x)
        x = L.MaxPooling2D(2, name=f"enc{stage}_pool")(x)
    for stage in reversed(range(stages)):
        x = MaxUnpooling2D(name=f"dec{stage}_unpool")([saved[stage], x])
        for i in range(VGG16_STAGES[stage]):
            last = i == VGG16_STAGES[stage] - 1
            out = channels[max(stage - 1, 0)] if last else channels[stage]
            x = conv_bn(x, out, 3, act="relu", name=f"dec{stage}_{i}")
    return keras.Model(inputs, classify(x, num_classes), name=f"segnet_{width}")


register("segnet", "segmentation", segnet)
register("segnet_lite", "segmentation", segnet, width=16, stages=4)
