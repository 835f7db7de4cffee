"""Building blocks shared by the zoo, made only of layers that tfmot quantizes and TFLite runs
as builtin int8 ops (Conv2D, DepthwiseConv2D, BatchNormalization, ReLU(6), LeakyReLU, Add, Multiply).

BatchNorm momentum is 0.9 (PyTorch's 0.1; keras.applications uses 0.999): with slower averages
the moving statistics of a deep, narrow network still carry the first high-learning-rate steps
after a short CPU schedule, and in inference mode the activations collapse to a constant
(measured: 0.67 training vs 0.08 validation top-1 after 240 steps at 0.99)."""

from __future__ import annotations

from tfpipe.backend import keras
from tfpipe.models.registry import custom_layer

L = keras.layers


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, never more than 10 % below `value` (MobileNet)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn(x, filters: int, kernel: int, stride: int = 1, *, act: str | None = "relu6", groups: int = 1,
            dilation: int = 1, name: str):
    """Conv (no bias: BN follows) -> BN -> ReLU6, ReLU, leaky ReLU or nothing (act=None); the BN folds
    into the conv at conversion. `groups` > 1 is a grouped convolution (ResNeXt, ShuffleNet v1)."""
    x = L.Conv2D(filters, kernel, stride, padding="same", groups=groups, dilation_rate=dilation, use_bias=False,
                 name=f"{name}_conv")(x)
    x = L.BatchNormalization(epsilon=1e-3, momentum=0.9, name=f"{name}_bn")(x)
    return activation(x, act, name)


def activation(x, act: str | None, name: str):
    """relu, relu6, or leaky (Darknet's LeakyReLU with slope 0.1: TFLite's int8 LEAKY_RELU)."""
    if act is None:
        return x
    if act == "leaky":
        return L.LeakyReLU(0.1, name=f"{name}_leaky")(x)
    if act not in ("relu", "relu6"):
        raise ValueError(f"unknown activation {act!r}")
    return L.ReLU(6.0 if act == "relu6" else None, name=f"{name}_{act}")(x)


def squeeze_excite(x, ratio: int, name: str):
    """Squeeze-and-Excitation (Hu et al., CVPR 2018): global pool -> 1x1 conv C/r, ReLU -> 1x1 conv C,
    sigmoid -> channel-wise multiply. Its Multiply quantizes through tfpipe.qat's output-only
    QuantizeConfig (TFLite: int8 MUL)."""
    channels = x.shape[-1]
    s = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(x)
    s = L.Conv2D(max(1, channels // ratio), 1, activation="relu", name=f"{name}_se_reduce")(s)
    s = L.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_se_expand")(s)
    return L.Multiply(name=f"{name}_se_scale")([x, s])


def depthwise_bn(x, stride: int = 1, *, dilation: int = 1, name: str):
    x = L.DepthwiseConv2D(3, stride, padding="same", dilation_rate=dilation, use_bias=False, name=f"{name}_dwconv")(x)
    x = L.BatchNormalization(epsilon=1e-3, momentum=0.9, name=f"{name}_dwbn")(x)
    return L.ReLU(6.0, name=f"{name}_dwrelu6")(x)


@custom_layer
@keras.utils.register_keras_serializable(package="tfpipe")
class ChannelSplit(L.Layer):
    """Split the channels into `parts` equal groups (ShuffleNet v2's channel split). A layer of its
    own because Lambda is forbidden in the zoo; TFLite runs it as SPLIT, and QAT passes it through
    unquantized (tfpipe.qat): its outputs are its input's values."""

    # QAT (tfpipe.qat) leaves its outputs alone: they are its already quantized input's values
    quantize_output = False

    def __init__(self, parts: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.parts = parts

    def call(self, inputs):
        from tfpipe.backend import tf

        return tf.split(inputs, self.parts, axis=-1)

    def compute_output_shape(self, input_shape):
        return [(*input_shape[:-1], input_shape[-1] // self.parts)] * self.parts

    def get_config(self):
        return {**super().get_config(), "parts": self.parts}


@custom_layer
@keras.utils.register_keras_serializable(package="tfpipe")
class SpaceToDepth(L.Layer):
    """Each `block` x `block` patch of pixels to channels (TFLite SPACE_TO_DEPTH): YOLOv2's
    passthrough "reorg". QAT passes it through (tfpipe.qat): it only moves quantized values."""

    # QAT (tfpipe.qat) leaves its output alone: it only moves already quantized values
    quantize_output = False

    def __init__(self, block: int, **kwargs):
        super().__init__(**kwargs)
        self.block = block

    def call(self, inputs):
        from tfpipe.backend import tf

        return tf.nn.space_to_depth(inputs, self.block)

    def compute_output_shape(self, input_shape):
        b = self.block
        n, h, w, c = input_shape
        return (n, None if h is None else h // b, None if w is None else w // b, c * b * b)

    def get_config(self):
        return {**super().get_config(), "block": self.block}


def channel_shuffle(x, groups: int, name: str):
    """ShuffleNet's channel shuffle as reshape -> transpose -> reshape (builtin RESHAPE, TRANSPOSE)."""
    h, w, c = x.shape[1:]
    x = L.Reshape((h, w, groups, c // groups), name=f"{name}_shuffle_split")(x)
    x = L.Permute((1, 2, 4, 3), name=f"{name}_shuffle_swap")(x)
    return L.Reshape((h, w, c), name=f"{name}_shuffle_merge")(x)
