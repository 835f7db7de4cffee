"""Where a run's dataset comes from: Fashion-MNIST's arrays, the built FashionScenes, or a dataset
of your own (data.format, tfpipe.data.files); each becomes the one dataset interface, `Splits`."""

from __future__ import annotations

import numpy as np

from tfpipe.config import DataConfig
from tfpipe.data import fashion_mnist, fashion_scenes, files
from tfpipe.data.pipeline import ArraySplit, RecordSplit, Splits
from tfpipe.errors import TfpipeError

# What each built-in source's samples can teach (a dataset of your own: tfpipe.data.files)
BUILTIN_GIVES = {"fashion_mnist": ("labels",), "fashion_scenes": ("boxes", "masks", "instances")}


def load_splits(cfg: DataConfig, targets: str) -> Splits:
    """The configured dataset for a task that learns from `targets`, with the dataset's own class
    names (a task sets the model's with `Splits.for_task`): a dataset of your own when data.format
    is set; the built scenes (built on first use) when data.builtin names them; else Fashion-MNIST's
    arrays. data.train_limit / test_limit keep the first N images of the train / test split."""
    if cfg.format:
        return files.load(cfg, targets)
    source = cfg.builtin or cfg.dataset
    if targets not in BUILTIN_GIVES[source]:
        gives = [name for name, given in BUILTIN_GIVES.items() if targets in given]
        raise TfpipeError(f"data: {source} has no {targets} to learn from",
                          f"use {' or '.join(gives)} (data.builtin / data.dataset), or a dataset of your own "
                          "(data.format)")
    if cfg.builtin:
        return _load_scenes(cfg)
    data = fashion_mnist.load(cfg.path, cfg.download)
    images, labels = data["train"]
    if cfg.train_limit:
        images, labels = images[: cfg.train_limit], labels[: cfg.train_limit]
    n_train = len(labels) - cfg.val_samples
    val = ArraySplit(images[n_train:], labels[n_train:]) if cfg.val_samples else None
    test_images, test_labels = data["test"]
    if cfg.test_limit:
        test_images, test_labels = test_images[: cfg.test_limit], test_labels[: cfg.test_limit]
    return Splits(cfg.dataset, ArraySplit(images[:n_train], labels[:n_train]), val,
                  ArraySplit(test_images, test_labels), "test", tuple(data["class_names"]))


def _load_scenes(cfg: DataConfig) -> Splits:
    root = fashion_scenes.ensure(fashion_scenes.cache_dir(cfg.cache), cfg.scenes, cfg.path)
    dataset = fashion_scenes.read(root, cfg.on_bad_sample)
    train, val = RecordSplit(dataset, "train"), RecordSplit(dataset, "val")
    if cfg.train_limit:
        train = train.subset(np.arange(min(cfg.train_limit, len(train))))
    if cfg.test_limit:
        val = val.subset(np.arange(min(cfg.test_limit, len(val))))
    return Splits(cfg.builtin, train, val, val, "val", tuple(dataset.class_names), skipped=tuple(dataset.skipped),
                  keypoint_names=dataset.keypoint_names)
