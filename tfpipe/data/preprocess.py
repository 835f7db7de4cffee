"""THE preprocessing function: the only code that turns pixels into model input.

Training, calibration and evaluation call `preprocess` with the run's `PreprocessSpec`
(tfpipe.runtime.contract, written to model.json), so the device does exactly this:

  1. channels: grayscale is repeated to RGB, RGB becomes grayscale with ITU-R 601 luma weights;
     then `channel_order: bgr` reverses RGB.
  2. resize to the model's height x width with bilinear sampling (half-pixel centres):
     `stretch` ignores the aspect ratio; `letterbox` scales by min(H/h, W/w), rounds the new size,
     and centres the image on a `pad_value` canvas (extra pixel, if odd, goes bottom/right).
  3. model input = pixel * scale + offset.
"""

from __future__ import annotations

from tfpipe.backend import tf
from tfpipe.runtime.contract import PreprocessSpec
from tfpipe.runtime.preprocess import LUMA, letterbox_geometry  # the device's twin shares the geometry

__all__ = ["LUMA", "fit_to_model", "letterbox_geometry", "preprocess"]


def _channels(x: tf.Tensor, spec: PreprocessSpec) -> tf.Tensor:
    have = x.shape[-1]
    if have not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {have}")
    if spec.channels == 3:
        if have == 1:
            x = tf.repeat(x, 3, axis=-1)
        if spec.channel_order == "bgr":
            x = x[..., ::-1]
    elif have == 3:
        x = tf.reduce_sum(x * tf.constant(LUMA, tf.float32), axis=-1, keepdims=True)
    return x


def _resize(x: tf.Tensor, spec: PreprocessSpec) -> tf.Tensor:
    h, w = x.shape[-3], x.shape[-2]
    if (h, w) == (spec.height, spec.width):
        return x
    if spec.resize == "stretch":
        return tf.image.resize(x, (spec.height, spec.width), method="bilinear")
    new_h, new_w, top, left = letterbox_geometry(h, w, spec.height, spec.width)
    x = tf.image.resize(x, (new_h, new_w), method="bilinear") - spec.pad_value
    pads = [[top, spec.height - new_h - top], [left, spec.width - new_w - left], [0, 0]]
    if x.shape.rank == 4:
        pads = [[0, 0]] + pads
    return tf.pad(x, pads) + spec.pad_value


def preprocess(images: tf.Tensor, spec: PreprocessSpec) -> tf.Tensor:
    """Pixels 0..255, [h, w, c] or [n, h, w, c] with static h, w, c -> float32 model input."""
    x = _channels(tf.cast(images, tf.float32), spec)
    return _resize(x, spec) * spec.scale + spec.offset


def fit_to_model(image: tf.Tensor, boxes: tf.Tensor, mask: tf.Tensor | None, spec: PreprocessSpec):
    """One sample of any size -> the model's height x width by the same resize `preprocess` does
    (`letterbox_geometry` in tensor form), carrying the boxes [N, 4] xyxy and the class mask
    [h, w, 1] along: boxes scaled and shifted, the mask resized nearest-neighbour and its letterbox
    border marked 255 (void). Channels, scale and offset are left to `preprocess`."""
    h, w = tf.cast(tf.shape(image)[0], tf.float64), tf.cast(tf.shape(image)[1], tf.float64)
    height, width = tf.constant(spec.height, tf.float64), tf.constant(spec.width, tf.float64)
    if spec.resize == "stretch":
        new_h, new_w = tf.constant(spec.height), tf.constant(spec.width)
    else:
        s = tf.minimum(height / h, width / w)
        new_h = tf.cast(tf.minimum(height, tf.round(h * s)), tf.int32)  # tf.round, like round(), is half-to-even
        new_w = tf.cast(tf.minimum(width, tf.round(w * s)), tf.int32)
    top, left = (spec.height - new_h) // 2, (spec.width - new_w) // 2
    image = tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear")
    image = tf.image.pad_to_bounding_box(image - spec.pad_value, top, left, spec.height, spec.width) + spec.pad_value
    sx, sy = tf.cast(new_w, tf.float64) / w, tf.cast(new_h, tf.float64) / h
    scale = tf.cast(tf.stack([sx, sy, sx, sy]), tf.float32)
    shift = tf.cast(tf.stack([left, top, left, top]), tf.float32)
    boxes = tf.reshape(boxes, (-1, 4)) * scale + shift
    if mask is not None:
        mask = tf.image.resize(mask, tf.stack([new_h, new_w]), method="nearest")
        mask = tf.image.pad_to_bounding_box(mask - 255, top, left, spec.height, spec.width) + 255
    return tf.ensure_shape(image, (spec.height, spec.width, None)), boxes, mask
