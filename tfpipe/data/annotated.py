"""tf.data for a Dataset's records on disk: records -> decoded samples (the sample contract of
design.md) -> the model's size by the preprocess geometry, boxes and masks along -> training
only: zoom, augment -> boxes clipped, degenerate ones dropped -> batches of (model input, targets).
Images of any size are decoded and resized a sample at a time, so a split of large photos never
sits in memory whole.

Targets ("labels", "boxes", "masks" or "instances"): one-hot labels float32 [B, C] (class
folders); {"boxes": ragged float32 [B, None, 4] xyxy pixels of the model input, "classes": ragged
float32 [B, None]}; class maps int32 [B, H, W, 1], 255 = void (tfpipe.data.formats.classmaps); or
instances: the boxes and classes plus "masks" ragged float32 [B, None, H, W] (1 inside the
instance, at the model input) and "keypoints" ragged float32 [B, None, K, 3] (x, y in model-input
pixels, visibility; K = 0 when the dataset has none).
"""

from __future__ import annotations

import numpy as np

from tfpipe.backend import tf
from tfpipe.config import AugmentConfig
from tfpipe.data.augment import build_augmenter, build_box_augmenter
from tfpipe.data.formats import Dataset, safe_path
from tfpipe.data.formats.classmaps import class_map, has_class_map
from tfpipe.data.preprocess import fit_to_model, preprocess
from tfpipe.errors import TfpipeError
from tfpipe.runtime.contract import PreprocessSpec

TARGETS = ("labels", "boxes", "masks", "instances")  # what this pipeline gives with each image
MIN_BOX_SIDE = 1.0  # pixels: a box thinner than this after clipping is dropped


def _records(dataset: Dataset, split: str, targets: str) -> tf.data.Dataset:
    if split not in dataset.splits:
        raise TfpipeError(f"split {split!r} is not in the dataset", f"use one of: {', '.join(dataset.splits)}")
    records = dataset.splits[split]
    if not records:
        raise TfpipeError(f"split {split!r} is empty", "every split needs at least one image")
    if targets == "masks" and not all(has_class_map(r) for r in records):
        missing = next(r.image for r in records if not has_class_map(r))
        raise TfpipeError(f"{missing}: no segmentation mask", "segmentation needs a class-map PNG or COCO "
                                                               "polygons per image")
    if targets == "instances" and any(not r.segmentations for r in records if len(r.classes)):
        missing = next(r.image for r in records if len(r.classes) and not r.segmentations)
        raise TfpipeError(f"{missing}: no instance segmentation", "instance segmentation needs COCO polygons or "
                                                                   "RLE per object")
    if targets == "labels" and any(r.label is None for r in records):
        missing = next(r.image for r in records if r.label is None)
        raise TfpipeError(f"{missing}: no class label", "classification reads class folders (data.format: folders)")
    lengths = [len(r.classes) for r in records]
    boxes = np.concatenate([r.boxes for r in records]).reshape(-1, 4).astype(np.float32)
    classes = np.concatenate([r.classes for r in records]).astype(np.float32)
    root = str(dataset.root)
    return tf.data.Dataset.from_tensor_slices({
        "index": np.arange(len(records)),
        "image": [str(safe_path(dataset.root, r.image, root)) for r in records],
        "label": np.array([-1 if r.label is None else r.label for r in records], np.int32),
        "boxes": tf.RaggedTensor.from_row_lengths(boxes, lengths),
        "classes": tf.RaggedTensor.from_row_lengths(classes, lengths),
    })


def random_zoom(image: tf.Tensor, mask: tf.Tensor, low: float, high: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Scale by a random factor in [low, high] (image bilinear, mask nearest), then crop or pad back
    to the same size at a random place; padding is black in the image and void (255) in the mask."""
    size = tf.shape(image)[:2]
    factor = tf.random.uniform((), low, high)
    scaled = tf.cast(tf.round(tf.cast(size, tf.float32) * factor), tf.int32)
    image = tf.image.resize(image, scaled, method="bilinear")
    mask = tf.image.resize(mask, scaled, method="nearest")
    both = tf.concat([image, tf.cast(mask, tf.float32) - 255.0], axis=-1)  # pad value 0 -> void after +255
    pad = tf.maximum(size - scaled, 0)
    offset = tf.cast(tf.random.uniform((2,), 0, 1) * tf.cast(pad + 1, tf.float32), tf.int32)
    offset = tf.minimum(offset, pad)
    both = tf.image.pad_to_bounding_box(both, offset[0], offset[1], tf.maximum(size[0], scaled[0]),
                                        tf.maximum(size[1], scaled[1]))
    both = tf.image.random_crop(both, tf.concat([size, tf.shape(both)[2:]], axis=0))
    return both[..., :3], tf.cast(tf.round(both[..., 3:] + 255.0), tf.int32)


def clip_and_drop(boxes: tf.RaggedTensor, classes: tf.RaggedTensor, height, width
                  ) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
    """Boxes clipped to the image; boxes whose clipped width or height is under MIN_BOX_SIDE dropped
    (with their classes). Padding rows that keras-cv marks with class -1 go too."""
    limit = tf.cast(tf.stack([width, height, width, height]), tf.float32)
    clipped = tf.ragged.map_flat_values(lambda b: tf.clip_by_value(b, 0.0, limit), boxes)
    values = clipped.flat_values
    keep = ((values[:, 2] - values[:, 0] >= MIN_BOX_SIDE) & (values[:, 3] - values[:, 1] >= MIN_BOX_SIDE)
            & (classes.flat_values >= 0))
    keep = boxes.with_flat_values(keep)
    return tf.ragged.boolean_mask(clipped, keep), tf.ragged.boolean_mask(classes, keep)


def make_annotated_dataset(dataset: Dataset, split: str, spec: PreprocessSpec, batch_size: int, targets: str, *,
                           training: bool = False, augment: AugmentConfig | None = None, seed: int = 0,
                           cache: bool = False, num_classes: int = 0, mask_ids: np.ndarray | None = None
                           ) -> tf.data.Dataset:
    """Batches of (model input, targets); see the module docstring. Evaluation and calibration
    (training=False) keep the split's order and never augment. `num_classes`: the one-hot width of
    labels. `mask_ids`: uint8 [256], a class-map PNG's id k becomes mask_ids[k] (data.classes reorders)."""
    if targets not in TARGETS:
        raise TfpipeError(f"a dataset on disk gives {', '.join(TARGETS)}, not {targets}", "see data.format")
    segmentation = targets == "masks"
    records = dataset.splits.get(split, [])

    def read_class_map(index: np.ndarray) -> np.ndarray:
        record = records[int(index)]
        ids = class_map(dataset.root, record)
        if mask_ids is not None and record.mask:  # a PNG's ids are the dataset's, a painted map's the model's
            ids = mask_ids[ids]
        return ids.astype(np.int32)[..., None]

    def decode(item: dict) -> dict:
        image = tf.cast(tf.io.decode_image(tf.io.read_file(item["image"]), channels=3, expand_animations=False),
                        tf.float32)
        mask = None
        if segmentation:
            mask = tf.numpy_function(read_class_map, [item["index"]], tf.int32, stateful=False)
            mask = tf.ensure_shape(mask, (None, None, 1))
        image, boxes, mask = fit_to_model(image, item["boxes"], mask, spec)
        sample = {"images": image, "bounding_boxes": {"boxes": boxes, "classes": item["classes"]},
                  "labels": item["label"]}
        if segmentation:
            sample["segmentation_masks"] = mask
        return sample

    ds = _records(dataset, split, targets)
    if training:  # the records, not decoded images: the shuffle buffer holds file names
        ds = ds.shuffle(len(dataset.splits[split]), seed=seed, reshuffle_each_iteration=True)
    if targets == "instances":
        return _instance_batches(dataset, split, ds, spec, batch_size, augment if training else None, seed, training)
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    if targets == "labels":
        return _label_batches(ds, spec, batch_size, num_classes, augment if training else None, seed, training)
    if cache:
        ds = ds.cache()
    augment = augment if training else None
    if segmentation and augment is not None and augment.jitter_scale:
        low, high = augment.jitter_scale

        def zoom(sample: dict) -> dict:
            image, mask = random_zoom(sample["images"], sample["segmentation_masks"], low, high)
            return {**sample, "images": image, "segmentation_masks": mask}

        ds = ds.map(zoom, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.ragged_batch(batch_size, drop_remainder=training)
    augmenter = build_box_augmenter(augment, targets, (spec.height, spec.width), seed) if augment else None

    def to_model(sample: dict):
        if augmenter is not None:
            sample = augmenter(sample)
        images, boxes = sample["images"], sample["bounding_boxes"]["boxes"]
        classes = sample["bounding_boxes"]["classes"]
        if not isinstance(boxes, tf.RaggedTensor):  # keras-cv may hand back dense boxes, padded with class -1
            boxes, classes = tf.RaggedTensor.from_tensor(boxes), tf.RaggedTensor.from_tensor(classes)
        shape = tf.shape(images)
        boxes, classes = clip_and_drop(boxes, classes, shape[1], shape[2])
        x = preprocess(images, spec)
        if segmentation:  # keras-cv's colour layers hand masks back as floats
            return x, tf.cast(tf.round(sample["segmentation_masks"]), tf.int32)
        return x, {"boxes": boxes, "classes": classes}

    return ds.map(to_model, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _label_batches(ds: tf.data.Dataset, spec: PreprocessSpec, batch_size: int, num_classes: int,
                   augment: AugmentConfig | None, seed: int, training: bool) -> tf.data.Dataset:
    """Classification: batches of (model input, one-hot label); one-hot before augmenting, as mixup
    and cutmix mix labels (as for images in memory)."""
    augmenter = build_augmenter(augment, seed) if augment is not None else None

    def to_model(sample: dict):
        sample = {"images": sample["images"], "labels": tf.one_hot(sample["labels"], num_classes)}
        if augmenter is not None:
            sample = augmenter(sample)
        return preprocess(sample["images"], spec), sample["labels"]

    ds = ds.map(lambda s: {"images": s["images"], "labels": s["labels"]})
    return ds.batch(batch_size, drop_remainder=training).map(to_model, num_parallel_calls=tf.data.AUTOTUNE
                                                             ).prefetch(tf.data.AUTOTUNE)


def _instance_batches(dataset: Dataset, split: str, ds: tf.data.Dataset, spec: PreprocessSpec, batch_size: int,
                      augment: AugmentConfig | None, seed: int, training: bool) -> tf.data.Dataset:
    """Instance segmentation: each sample's instance masks (COCO polygons / RLE through pycocotools)
    and keypoints carried through the same resize as its boxes. Training augments by horizontal flip
    (masks mirrored, keypoints mirrored and left/right partners swapped:
    tfpipe.data.formats.keypoints.flip_order) and colour jitter; nothing else moves masks exactly."""
    from tfpipe.data.formats.coco import instance_masks
    from tfpipe.data.formats.keypoints import flip_order

    records = dataset.splits[split]
    names = dataset.keypoint_names
    count = len(names)
    flip = np.asarray(flip_order(names), np.int32) if count else np.zeros(0, np.int32)

    def read_instances(index: np.ndarray):
        record = records[int(index)]
        masks = instance_masks(record).astype(np.uint8)  # [N, h, w]
        # one spare channel, so an image without objects still has a mask tensor to resize
        stacked = np.concatenate([np.transpose(masks, (1, 2, 0)), np.zeros((*masks.shape[1:], 1), np.uint8)], -1)
        points = (record.keypoints if record.keypoints is not None and count
                  else np.zeros((len(record.classes), count, 3), np.float32))
        return stacked.astype(np.int32), np.asarray(points, np.float32).reshape(-1, count, 3)

    def decode(item: dict) -> dict:
        image = tf.cast(tf.io.decode_image(tf.io.read_file(item["image"]), channels=3, expand_animations=False),
                        tf.float32)
        masks, points = tf.numpy_function(read_instances, [item["index"]], (tf.int32, tf.float32), stateful=False)
        masks = tf.ensure_shape(masks, (None, None, None))
        points = tf.ensure_shape(points, (None, count, 3))
        n = tf.shape(points)[0]
        # keypoints travel as degenerate boxes (x, y, x, y), through the very scaling of the boxes
        xy = tf.reshape(points[..., :2], (-1, 2))
        both = tf.concat([tf.reshape(item["boxes"], (-1, 4)), tf.concat([xy, xy], -1)], 0)
        image, both, masks = fit_to_model(image, both, masks, spec)  # masks: nearest, the border 255
        boxes, moved = both[:n], tf.reshape(both[n:, :2], (n, count, 2))
        masks = tf.cast(tf.equal(tf.transpose(masks[..., :-1], (2, 0, 1)), 1), tf.float32)  # [N, H, W]
        return {"images": image, "boxes": boxes, "classes": item["classes"], "masks": masks,
                "keypoints": tf.concat([moved, points[..., 2:]], -1)}

    def mirror(sample: dict) -> dict:
        width = tf.cast(tf.shape(sample["images"])[1], tf.float32)
        b = sample["boxes"]
        k = tf.gather(sample["keypoints"], flip, axis=1) if count else sample["keypoints"]
        return {**sample, "images": sample["images"][:, ::-1], "masks": sample["masks"][:, :, ::-1],
                "boxes": tf.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], -1),
                "keypoints": tf.concat([width - k[..., :1], k[..., 1:]], -1)}

    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    if augment is not None and augment.horizontal_flip:
        def maybe_mirror(sample: dict) -> dict:
            return tf.cond(tf.random.uniform((), seed=seed + 5) < 0.5, lambda: mirror(sample), lambda: sample)

        ds = ds.map(maybe_mirror, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.ragged_batch(batch_size, drop_remainder=training)
    # colour jitter alone: it changes pixels, never where anything is
    colour = None
    if augment is not None and augment.color_jitter:
        colour = build_box_augmenter(AugmentConfig(horizontal_flip=False, color_jitter=augment.color_jitter), "boxes",
                                     (spec.height, spec.width), seed)

    def to_model(sample: dict):
        images = sample["images"]
        if colour is not None:
            images = colour({"images": images, "bounding_boxes": {"boxes": sample["boxes"],
                                                                 "classes": sample["classes"]}})["images"]
        return preprocess(images, spec), {k: sample[k] for k in ("boxes", "classes", "masks", "keypoints")}

    return ds.map(to_model, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
