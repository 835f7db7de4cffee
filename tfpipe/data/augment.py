"""Training-time augmentation: the only module that imports keras_cv (frozen upstream).

Layers work on the sample contract's dict ({"images": float 0..255, "labels": ...}) in pixel
space, before `preprocess`, so colour and geometry settings mean the same for every model.
Evaluation and calibration never call this.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable

from tfpipe.config import AugmentConfig


def build_augmenter(cfg: AugmentConfig, seed: int) -> Callable[[dict], dict] | None:
    """A callable on a batched sample dict, or None when nothing is switched on."""
    with contextlib.redirect_stdout(io.StringIO()):  # keras-core announces "Using TensorFlow backend"
        import keras_cv

    layers = []
    if cfg.horizontal_flip:
        layers.append(keras_cv.layers.RandomFlip(mode="horizontal", seed=seed))
    if cfg.translate > 0:
        layers.append(keras_cv.layers.RandomTranslation(cfg.translate, cfg.translate, fill_mode="constant",
                                                        seed=seed + 1))
    if not layers:
        return None

    def augment(sample: dict) -> dict:
        for layer in layers:
            sample = layer(sample, training=True)
        return sample

    return augment
