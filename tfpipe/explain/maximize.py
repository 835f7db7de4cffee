"""Images made by gradient ascent to excite a unit (Erhan et al. 2009; Simonyan et al. 2014;
Yosinski et al. 2015) and the deep-dream variant that amplifies what a layer already sees in a
real image (Mordvintsev et al. 2015).

The image is optimized in pixels (0..255) and passed through the run's preprocessing, so it is an
image the model could be shown. The regularizers are Yosinski's: a random jitter (roll) before
every step, so the ascent cannot exploit one pixel grid; a Gaussian blur every few steps, which
damps the high frequencies the ascent otherwise fills with noise; clipping to the valid pixel
range; and a small L2 decay towards mid-grey. Each step moves by the gradient divided by its mean
magnitude, so one learning rate (pixels per step) suits every layer and depth. The jitter grows
with the input (none at 32 px, where one pixel is a large share of a unit's field and the ascent
measurably stalls with it: a median 13x rise instead of 130x at 128 steps in a trained MobileNetV2).

A ReLU that is off for the noise image passes no gradient, so for an activation layer the ascent
climbs the activation's input, which the activation passes on monotonically; what is reported is
the activation itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfpipe.backend import keras, tf
from tfpipe.explain import features
from tfpipe.runtime.contract import PreprocessSpec


@dataclass(frozen=True)
class Ascent:
    """The optimizer's settings; the defaults suit 32 to 224 pixel inputs."""

    steps: int = 128
    rate: float = 2.0  # pixels per step at the mean gradient magnitude
    jitter: float = 1 / 64  # random roll before each step, as a share of the input size
    blur_every: int = 8
    blur_sigma: float = 0.5
    decay: float = 1e-3  # pull towards mid-grey per step
    seed: int = 0


def _blur(images: tf.Tensor, sigma: float) -> tf.Tensor:
    """A separable Gaussian blur (5 taps) of [B, H, W, C] images, edges reflected."""
    taps = np.exp(-0.5 * (np.arange(-2, 3) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    channels = images.shape[-1]
    padded = tf.pad(images, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")
    rows = tf.constant(np.tile(taps.reshape(5, 1, 1, 1), (1, 1, channels, 1)))
    cols = tf.constant(np.tile(taps.reshape(1, 5, 1, 1), (1, 1, channels, 1)))
    blurred = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(blurred, cols, [1, 1, 1, 1], "VALID")


def climbing_model(model, layer: str, dream: bool = False):
    """A model from the input to (what the ascent climbs, what it reports) for `layer`: the
    activation's input and the activation for an activation layer with one input (not for a
    dream, which climbs the layer's energy), else the layer twice."""
    target = model.get_layer(layer)
    climbed = target
    inbound = features.inbound(target)
    if not dream and isinstance(target, features.ACTIVATIONS) and len(inbound) == 1 \
            and inbound[0].output_shape == target.output_shape:
        climbed = inbound[0]
    return keras.Model(model.inputs, [climbed.output, target.output]) if climbed is not target \
        else features.activation_model(model, [layer, layer])


def _objective(layer_model, channels: np.ndarray | None):
    """Per image, (the value climbed, the value reported). channels[b]: the channel image b
    excites (its mean over positions, or a logit's value); None: deep dream, the mean squared
    activation of the whole layer."""
    def of(out):
        if channels is None:
            return tf.reduce_mean(tf.square(out), axis=list(range(1, len(out.shape))))
        picked = tf.gather(out, channels, axis=-1, batch_dims=1)  # [B, H, W] or [B]
        return tf.reduce_mean(picked, axis=list(range(1, len(picked.shape)))) if len(picked.shape) > 1 else picked

    def value(model_input):
        climbed, reported = layer_model(model_input, training=False)
        return of(climbed), of(reported)
    return value


def ascend(layer_model, start: np.ndarray, spec: PreprocessSpec, channels: np.ndarray | None,
           ascent: Ascent = Ascent(), progress=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradient ascent from `start` (uint8-range pixels [B, H, W, C]) on each image's objective.
    Returns (images as uint8, objective at the start, objective at the end), per image."""
    value = _objective(layer_model, channels)
    scale, offset = np.float32(spec.scale), np.float32(spec.offset)
    rng = np.random.default_rng(ascent.seed)
    jitter = round(ascent.jitter * max(start.shape[1:3]))

    @tf.function
    def step(pixels, dy, dx, blur):
        with tf.GradientTape() as tape:
            tape.watch(pixels)
            shifted = tf.roll(pixels, shift=[dy, dx], axis=[1, 2])
            total = tf.reduce_sum(value(shifted * scale + offset)[0])
        grad = tape.gradient(total, pixels)
        grad = grad / (tf.reduce_mean(tf.abs(grad), axis=[1, 2, 3], keepdims=True) + 1e-8)
        pixels = pixels + ascent.rate * grad - ascent.decay * (pixels - 127.5)
        pixels = tf.cond(blur, lambda: _blur(pixels, ascent.blur_sigma), lambda: pixels)
        return tf.clip_by_value(pixels, 0.0, 255.0)

    pixels = tf.constant(start, tf.float32)
    before = value(pixels * scale + offset)[1].numpy()
    for i in range(ascent.steps):
        dy, dx = (int(v) for v in rng.integers(-jitter, jitter + 1, size=2)) if jitter else (0, 0)
        blur = bool(ascent.blur_every and (i + 1) % ascent.blur_every == 0 and i + 1 < ascent.steps)
        pixels = step(pixels, tf.constant(dy), tf.constant(dx), tf.constant(blur))
        if progress is not None:
            progress.add(1)
    after = value(pixels * scale + offset)[1].numpy()
    return np.round(pixels.numpy()).astype(np.uint8), before, after


def noise(count: int, hw: tuple[int, int], channels: int, seed: int = 0) -> np.ndarray:
    """The usual start: mid-grey with faint Gaussian noise (pixels 128 +- 8)."""
    rng = np.random.default_rng(seed)
    return np.clip(128 + 8 * rng.standard_normal((count, *hw, channels)), 0, 255).astype(np.float32)
