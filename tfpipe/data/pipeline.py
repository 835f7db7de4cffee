"""Splits and tf.data pipelines: sample dicts -> (augment) -> preprocess -> batches for the model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tfpipe.backend import tf
from tfpipe.config import DataConfig
from tfpipe.data import fashion_mnist
from tfpipe.data.preprocess import PreprocessSpec, preprocess


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 [N, H, W, C], pixels 0..255
    labels: np.ndarray  # int32 [N]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split | None  # the tail of the training split, held out to watch over-fitting
    test: Split
    class_names: tuple[str, ...]


def load_splits(cfg: DataConfig) -> Splits:
    data = fashion_mnist.load(cfg.path, cfg.download)
    images, labels = data["train"]
    if cfg.train_limit:
        images, labels = images[: cfg.train_limit], labels[: cfg.train_limit]
    n_train = len(labels) - cfg.val_samples
    val = Split(images[n_train:], labels[n_train:]) if cfg.val_samples else None
    test_images, test_labels = data["test"]
    if cfg.test_limit:
        test_images, test_labels = test_images[: cfg.test_limit], test_labels[: cfg.test_limit]
    return Splits(Split(images[:n_train], labels[:n_train]), val, Split(test_images, test_labels),
                  tuple(data["class_names"]))


def make_dataset(split: Split, spec: PreprocessSpec, batch_size: int, num_classes: int, *, training: bool = False,
                 augmenter: Callable[[dict], dict] | None = None, seed: int = 0,
                 with_labels: bool = True) -> tf.data.Dataset:
    """Batches of (model input, one-hot label), or model input alone with `with_labels=False`.

    Training shuffles, drops the last partial batch and augments; otherwise the order is the
    split's and nothing random happens, so evaluation and calibration see exactly `preprocess(x)`.
    """
    ds = tf.data.Dataset.from_tensor_slices({"images": split.images, "labels": split.labels})
    if training:
        ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=training)

    def to_model(sample: dict):
        sample = {"images": tf.cast(sample["images"], tf.float32),
                  "labels": tf.one_hot(sample["labels"], num_classes)}
        if training and augmenter is not None:
            sample = augmenter(sample)
        x = preprocess(sample["images"], spec)
        return (x, sample["labels"]) if with_labels else x

    return ds.map(to_model, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def calibration_inputs(split: Split, spec: PreprocessSpec, count: int, seed: int = 0) -> np.ndarray:
    """`count` training images drawn at random (seeded), preprocessed: float32 [count, H, W, C]."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(split), size=min(count, len(split)), replace=False))
    chosen = Split(split.images[pick], split.labels[pick])
    ds = make_dataset(chosen, spec, batch_size=64, num_classes=1, with_labels=False)
    return np.concatenate(list(ds.as_numpy_iterator()))
