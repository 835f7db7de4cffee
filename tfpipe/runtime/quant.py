"""Affine (de)quantization of tensors: real = scale * (q - zero_point), per tensor."""

from __future__ import annotations

import numpy as np

INTEGER_DTYPES = (np.int8, np.uint8, np.int16)


def quantize(x: np.ndarray, dtype, scale: float, zero_point: int) -> np.ndarray:
    """Round to nearest (ties to even, as TFLite's reference QUANTIZE) and saturate."""
    if np.dtype(dtype) not in [np.dtype(d) for d in INTEGER_DTYPES]:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, np.float64) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    if not np.issubdtype(q.dtype, np.integer) or scale == 0:
        return q.astype(np.float32)
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)
