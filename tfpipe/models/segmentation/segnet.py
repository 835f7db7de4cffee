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

The Edge TPU maps none of EQUAL, the boolean ops, SELECT_V2 or DEPTH_TO_SPACE, nor STRIDED_SLICE
with strides of 2, so the layer has a second expression of the same function in int8 (`mappable`,
which the Edge TPU build turns on: tfpipe.delegates.rewrite) in ops it maps. MAX_POOL_2D gives the
window's maximum and SPACE_TO_DEPTH each window position its channel block x; maximum - x (SUB),
then a frozen 1x1 depthwise convolution by `gain` with a fused RELU6, gives relu6(...) / 6: 0 where
x is the maximum and 1 where x is one int8 step or more below it. In int8 this is exactly the
first expression's EQUAL: x and the maximum share one scale, the SUB's output range (at most
theirs) keeps every step difference distinct, and the convolution's int32 accumulator is exact
before RELU6 clamps. The tie rule is products of the 0/1 masks, and the full-size mask is the four
masks upsampled (RESIZE_NEAREST_NEIGHBOR) times constant 0/1 patterns of their positions.

The gain depends on the int8 step of the layer's input, so the Edge TPU build sets it from the
calibration images (`gain_for`). Measured on the way there, each in a converted int8 model:
- SUB, then MUL by the gain with RELU6: the converter gave the SUB's output RELU6's range [0, 6],
  2.4x the input's step, and merged values one step apart;
- one gain large enough for every step: XNNPACK refuses requantization multipliers of 256 and more
  (gains from 2^18 on a 0.01 step), and the interpreter aborted at 2^22;
- CONCATENATION [maximum, x] into a 1x1 convolution, or the maximum as MAXIMUM of the four blocks:
  the converter left every consumer of the encoder's max-pools in float (DEQUANTIZE, float
  CONV_2D); MAX_POOL_2D is the same op as the encoder's, merged with it.
In float the mappable expression differs from the first only in windows where a value is less
than a quarter of an int8 step below the maximum (GAIN_MARGIN): those count partly as ties.
"""

from __future__ import annotations

import numpy as np

from tfpipe.backend import keras
from tfpipe.models.blocks import conv_bn
from tfpipe.models.registry import custom_layer, register
from tfpipe.models.segmentation.common import check_size, classify

L = keras.layers
VGG16_STAGES = (2, 2, 3, 3, 3)  # convolutions per stage; channels 64, 128, 256, 512, 512 at width 64
# A value one int8 step below the maximum reaches the convolution as at least half a step (the SUB
# rounds), which must reach relu6's 6: gain >= 12 / step. GAIN_MARGIN x 6 / step (up to twice more,
# rounded to a power of two) holds for a converter's input range up to 2x narrower than the
# calibration's min/max measured here, and keeps the convolution's requantization multiplier
# under 16 x the ratio of the two steps (XNNPACK refuses 256 and more).
GAIN_MARGIN = 4


@custom_layer
@keras.utils.register_keras_serializable(package="tfpipe")
class MaxUnpooling2D(L.Layer):
    """[features before a 2x2/2 max-pool, values at the pooled size] -> each value at its window's
    argmax in the features, zeros elsewhere."""

    # QAT (tfpipe.qat) leaves its output alone: its input's quantized values, or zero
    quantize_output = False

    def __init__(self, mappable: bool = False, gain: float | None = None, **kwargs):
        super().__init__(**kwargs)
        if mappable and not gain:
            raise ValueError("the mappable expression needs its gain (MaxUnpooling2D.gain_for)")
        self.mappable, self.gain = bool(mappable), gain

    def get_config(self):
        return {**super().get_config(), "mappable": self.mappable, "gain": self.gain}

    @staticmethod
    def gain_for(low: float, high: float) -> float:
        """The mappable expression's gain for an input calibrated to [low, high] (int8's range
        always holds 0)."""
        step = (max(high, 0.0) - min(low, 0.0)) / 255
        if step <= 0:
            return 1.0  # an all-zero input: every window ties
        # a power of two: gain * x is then exact in float, so a tie cancels to exactly 0 (other gains
        # left the convolution's rounding, a relu6 input of ~1e-3, in 0.5 % of the output cells)
        return float(2.0 ** np.ceil(np.log2(GAIN_MARGIN * 6 / step)))

    def call(self, inputs):
        before, values = inputs
        return self._mappable(before, values) if self.mappable else self._selected(before, values)

    @staticmethod
    def _selected(before, values):
        from tfpipe.backend import tf

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

    def _mappable(self, before, values):
        """The same function in int8, in ops the Edge TPU maps (module docstring); needs static sizes."""
        from tfpipe.backend import tf

        h, w = before.shape[1:3]
        # channel block k of SPACE_TO_DEPTH is window position k, row-major (MaxPoolWithArgmax's order)
        blocks = tf.split(tf.nn.space_to_depth(before, 2), 4, axis=-1)
        maxima = tf.nn.max_pool2d(before, 2, 2, "VALID")
        gain = np.full((1, 1, before.shape[-1], 1), self.gain, np.float32)
        mask, free = None, None  # free: no earlier position of the window was the maximum
        for k, block in enumerate(blocks):
            # 0 at the maximum, else 1 (module docstring: the convolution keeps the difference in steps exact)
            below = tf.nn.relu6(tf.nn.depthwise_conv2d(maxima - block, gain, [1, 1, 1, 1], "VALID")) * (1 / 6)
            first = 1 - below if free is None else (1 - below) * free
            free = below if free is None else free * below
            position = np.zeros((1, h, w, 1), np.float32)
            position[:, k // 2::2, k % 2::2] = 1
            term = tf.image.resize(first, (h, w), method="nearest") * position
            mask = term if mask is None else mask + term
        return tf.image.resize(values, (h, w), method="nearest") * mask

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
