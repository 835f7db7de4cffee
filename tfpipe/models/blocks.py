"""Building blocks shared by the zoo, made only of layers that tfmot quantizes and TFLite runs
as builtin int8 ops (Conv2D, DepthwiseConv2D, BatchNormalization, ReLU(6), Add).

BatchNorm momentum is 0.99 (not the 0.999 of keras.applications): the moving statistics must
settle within the short schedules a CPU affords, or evaluation sees stale statistics."""

from __future__ import annotations

from tfpipe.backend import keras

L = keras.layers


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, never more than 10 % below `value` (MobileNet)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn(x, filters: int, kernel: int, stride: int = 1, *, relu6: bool = True, name: str):
    """Conv (no bias: BN follows) -> BN -> optional ReLU6; the BN folds into the conv at conversion."""
    x = L.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = L.BatchNormalization(epsilon=1e-3, momentum=0.99, name=f"{name}_bn")(x)
    return L.ReLU(6.0, name=f"{name}_relu6")(x) if relu6 else x


def depthwise_bn(x, stride: int = 1, *, name: str):
    x = L.DepthwiseConv2D(3, stride, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
    x = L.BatchNormalization(epsilon=1e-3, momentum=0.99, name=f"{name}_dwbn")(x)
    return L.ReLU(6.0, name=f"{name}_dwrelu6")(x)
