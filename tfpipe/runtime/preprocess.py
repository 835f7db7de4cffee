"""The device's side of THE preprocessing function (tfpipe/data/preprocess.py), in NumPy.

model.json's `preprocess` section is a PreprocessSpec (tfpipe.runtime.contract); this applies it
to one image exactly as the TensorFlow pipeline does for training, calibration and evaluation (a
test compares the two on random images of every size, channel count and resize policy):

  1. channels: grayscale repeated to RGB, or RGB to grayscale with ITU-R 601 luma; then `bgr`
     reverses RGB;
  2. bilinear resize with half-pixel centres (TensorFlow's resize_bilinear with
     half_pixel_centers=True, no antialiasing), `stretch` or `letterbox` (centred on a
     `pad_value` canvas, the odd pixel bottom/right);
  3. pixel * scale + offset.
"""

from __future__ import annotations

import numpy as np

from tfpipe.runtime.contract import PreprocessSpec

LUMA = (0.299, 0.587, 0.114)


def letterbox_geometry(h: int, w: int, height: int, width: int) -> tuple[int, int, int, int]:
    """(new_h, new_w, top, left) of an h x w image letterboxed into height x width."""
    s = min(height / h, width / w)
    new_h, new_w = min(height, round(h * s)), min(width, round(w * s))
    return new_h, new_w, (height - new_h) // 2, (width - new_w) // 2


def _weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output index: the two source indices and the weight of the second (half-pixel)."""
    scale = in_size / out_size
    position = (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5
    floor = np.floor(position)
    lower = np.maximum(floor, 0).astype(np.int64)
    upper = np.minimum(np.ceil(position), in_size - 1).astype(np.int64)
    return lower, upper, (position - floor).astype(np.float32)


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """float32 [h, w, c] -> [height, width, c], as tf.image.resize(method='bilinear')."""
    top, bottom, wy = _weights(image.shape[0], height)
    left, right, wx = _weights(image.shape[1], width)
    rows_top, rows_bottom = image[top], image[bottom]
    tl, tr = rows_top[:, left], rows_top[:, right]
    bl, br = rows_bottom[:, left], rows_bottom[:, right]
    wx = wx[None, :, None]
    upper = tl + (tr - tl) * wx
    lower = bl + (br - bl) * wx
    return (upper + (lower - upper) * wy[:, None, None]).astype(np.float32)


def preprocess(pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Pixels 0..255 [h, w] or [h, w, c] (c = 1 or 3) -> float32 model input [H, W, C]."""
    x = np.asarray(pixels, np.float32)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[-1] not in (1, 3):
        raise ValueError(f"an image must be [h, w], [h, w, 1] or [h, w, 3], got shape {list(np.shape(pixels))}")
    if spec.channels == 3:
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        if spec.channel_order == "bgr":
            x = x[..., ::-1]
    elif x.shape[-1] == 3:
        x = (x * np.array(LUMA, np.float32)).sum(axis=-1, keepdims=True, dtype=np.float32)
    height, width = spec.height, spec.width
    if x.shape[:2] != (height, width):
        if spec.resize == "stretch":
            x = resize_bilinear(x, height, width)
        else:
            new_h, new_w, top, left = letterbox_geometry(x.shape[0], x.shape[1], height, width)
            canvas = np.full((height, width, x.shape[-1]), spec.pad_value, np.float32)
            canvas[top:top + new_h, left:left + new_w] = resize_bilinear(x, new_h, new_w)
            x = canvas
    return (x * np.float32(spec.scale) + np.float32(spec.offset)).astype(np.float32)
