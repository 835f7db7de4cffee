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
    if cfg.mixup:
        layers.append(keras_cv.layers.MixUp(seed=seed + 2))
    if cfg.cutmix:
        layers.append(keras_cv.layers.CutMix(seed=seed + 3))
    if not layers:
        return None

    def augment(sample: dict) -> dict:
        for layer in layers:
            sample = layer(sample, training=True)
        return sample

    return augment


def build_box_augmenter(cfg: AugmentConfig, targets: str, size: tuple[int, int], seed: int
                        ) -> Callable[[dict], dict] | None:
    """Detection and segmentation: a callable on a batched sample dict with ragged xyxy pixel boxes
    (and `segmentation_masks`), or None when nothing is switched on. keras-cv moves boxes and masks
    with the image; masks are never interpolated (flips only here; the segmentation zoom is
    `random_zoom`, nearest-neighbour, in the per-sample pipeline)."""
    with contextlib.redirect_stdout(io.StringIO()):
        import keras_cv

    layers = []
    if cfg.horizontal_flip:
        layers.append(keras_cv.layers.RandomFlip(mode="horizontal", bounding_box_format="xyxy", seed=seed))
    boxes_only = targets == "boxes"  # layers that move boxes but would interpolate or misplace masks
    if boxes_only and cfg.jitter_scale:
        layers.append(keras_cv.layers.JitteredResize(size, scale_factor=tuple(cfg.jitter_scale),
                                                     bounding_box_format="xyxy", seed=seed + 1))
    if cfg.color_jitter:
        c = cfg.color_jitter
        layers.append(keras_cv.layers.RandomColorJitter((0, 255), brightness_factor=c, contrast_factor=c,
                                                        saturation_factor=(0.5 - c / 2, 0.5 + c / 2),
                                                        hue_factor=c / 4, seed=seed + 2))
    if boxes_only and cfg.mosaic:
        layers.append(mosaic)
    if boxes_only and cfg.mixup:
        layers.append(keras_cv.layers.MixUp(seed=seed + 4))
    if not layers:
        return None

    def augment(sample: dict) -> dict:
        for layer in layers:
            sample = layer(sample) if layer is mosaic else layer(sample, training=True)
        return sample

    return augment


def mosaic(sample: dict) -> dict:
    """Each image of the batch becomes a 2x2 tile of itself and three random partners, cropped back
    to its size around a random integer centre in the middle half; boxes move with their tile.

    Not keras_cv.layers.Mosaic: keras-cv 0.9 samples the crop with crop_and_resize over 2W-1 pixels
    (align-corners), which stretches the image by W/(W-1) while the boxes are only shifted: measured
    here, box edges up to 1.3 px off their objects. An integer crop needs no resampling at all."""
    from tfpipe.backend import tf

    images = sample["images"]
    boxes, classes = sample["bounding_boxes"]["boxes"], sample["bounding_boxes"]["classes"]
    if not isinstance(boxes, tf.RaggedTensor):
        boxes, classes = tf.RaggedTensor.from_tensor(boxes), tf.RaggedTensor.from_tensor(classes)
    batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    partners = [tf.range(batch)] + [tf.random.shuffle(tf.range(batch)) for _ in range(3)]
    tiles = [tf.gather(images, p) for p in partners]
    canvas = tf.concat([tf.concat(tiles[:2], axis=2), tf.concat(tiles[2:], axis=2)], axis=1)  # [B, 2H, 2W, C]
    centre_x = tf.random.uniform((batch,), width // 4, 3 * width // 4 + 1, tf.int32)
    centre_y = tf.random.uniform((batch,), height // 4, 3 * height // 4 + 1, tf.int32)
    left, top = width - centre_x, height - centre_y  # the crop's corner on the canvas
    rows = top[:, None] + tf.range(height)[None, :]
    cols = left[:, None] + tf.range(width)[None, :]
    cropped = tf.gather(tf.gather(canvas, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    moved_boxes, moved_classes = [], []
    for partner, (tile_x, tile_y) in zip(partners, ((0, 0), (1, 0), (0, 1), (1, 1)), strict=True):
        shift = tf.cast(tf.stack([tile_x * width - left, tile_y * height - top] * 2, axis=1), tf.float32)  # [B, 4]
        tile_boxes = tf.gather(boxes, partner)
        moved_boxes.append(tile_boxes + tf.expand_dims(shift, 1))
        moved_classes.append(tf.gather(classes, partner))
    return {**sample, "images": tf.ensure_shape(cropped, images.shape),
            "bounding_boxes": {"boxes": tf.concat(moved_boxes, axis=1), "classes": tf.concat(moved_classes, axis=1)}}
