"""Splits and tf.data pipelines: sample dicts -> (augment) -> preprocess -> batches for the model.

Classification reads Fashion-MNIST into arrays (`Splits`); segmentation reads annotated scenes
from disk (`SceneSplits`, batched by data/annotated.py). Both expose `class_names` and
`num_train`, and `calibration_inputs` / `evaluation_arrays` serve either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from tfpipe.backend import tf
from tfpipe.config import DataConfig
from tfpipe.data import fashion_mnist
from tfpipe.data.formats import Dataset
from tfpipe.data.preprocess import preprocess
from tfpipe.errors import TfpipeError
from tfpipe.runtime.contract import PreprocessSpec


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


    @property
    def num_train(self) -> int:
        return len(self.train)


@dataclass(frozen=True)
class SceneSplits:
    """An annotated dataset on disk (FashionScenes): training reads its `train` split; validation
    and evaluation read `val`, which is the held-out split, as in Pascal VOC."""

    dataset: Dataset
    class_names: tuple[str, ...]  # the model's classes; for segmentation background is class 0
    task: str
    train: str = "train"
    test: str = "val"

    @property
    def num_train(self) -> int:
        return len(self.dataset.splits[self.train])

    def subset(self, split: str, indices: np.ndarray) -> SceneSplits:
        """The same dataset with only the records `indices` of `split` (in the split `split`)."""
        records = self.dataset.splits[split]
        return replace(self, dataset=replace(self.dataset, splits={
            **self.dataset.splits, split: [records[i] for i in indices]}))


def load_splits(cfg: DataConfig, task: str) -> Splits | SceneSplits:
    """The data of `task`: Fashion-MNIST arrays for classification, else the built scenes (built
    on first use). data.train_limit / test_limit keep the first N images of the train / test split."""
    if task != "classification":
        return _load_scenes(cfg, task)
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


def _load_scenes(cfg: DataConfig, task: str) -> SceneSplits:
    from tfpipe.data import fashion_scenes

    root = fashion_scenes.ensure(fashion_scenes.cache_dir(cfg.cache), cfg.scenes, cfg.path)
    dataset = fashion_scenes.read(root, cfg.on_bad_sample)
    names = fashion_scenes.SEGMENTATION_CLASSES if task == "segmentation" else dataset.class_names
    splits = SceneSplits(dataset, tuple(names), task)
    for split, limit in ((splits.train, cfg.train_limit), (splits.test, cfg.test_limit)):
        if limit:
            splits = splits.subset(split, np.arange(min(limit, len(dataset.splits[split]))))
    return splits


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


def calibration_inputs(splits: Splits | SceneSplits, spec: PreprocessSpec, count: int, seed: int = 0) -> np.ndarray:
    """`count` training images drawn at random (seeded), preprocessed: float32 [count, H, W, C]."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(splits.num_train, size=min(count, splits.num_train), replace=False))
    if isinstance(splits, SceneSplits):
        return evaluation_arrays(splits.subset(splits.train, pick), spec, splits.train)[0]
    chosen = Split(splits.train.images[pick], splits.train.labels[pick])
    ds = make_dataset(chosen, spec, batch_size=64, num_classes=1, with_labels=False)
    return np.concatenate(list(ds.as_numpy_iterator()))


def held_out_arrays(splits: Splits | SceneSplits, spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed inputs and targets of the split that tunes conversion choices (--max-drop):
    the validation tail of the training split, so the test split stays unseen. FashionScenes has
    no third split: its val scenes serve, as they do for validation during training."""
    if isinstance(splits, SceneSplits):
        return evaluation_arrays(splits, spec)
    if splits.val is None or not len(splits.val):
        raise TfpipeError("data.val_samples is 0: selective quantization (--max-drop) needs a held-out split",
                          "set data.val_samples, e.g. --set data.val_samples=5000")
    inputs = make_dataset(splits.val, spec, 512, len(splits.class_names), with_labels=False)
    return np.concatenate(list(inputs.as_numpy_iterator())), splits.val.labels


def evaluation_arrays(splits: Splits | SceneSplits, spec: PreprocessSpec, split: str | None = None
                      ) -> tuple[np.ndarray, np.ndarray | list[tuple[np.ndarray, np.ndarray]]]:
    """The test split (or `split` of scenes), preprocessed, in its order, never augmented: model
    inputs float32 [N, H, W, C] and targets: labels int32 [N]; class maps int32 [N, H, W] with
    255 = void, at the model's input size; or, for detection, one (boxes float32 [K, 4] x1 y1 x2 y2
    in pixels of the model input, classes int32 [K]) pair per image."""
    if isinstance(splits, SceneSplits):
        from tfpipe.data.annotated import make_annotated_dataset

        batches = list(make_annotated_dataset(splits.dataset, split or splits.test, spec, 64, splits.task)
                       .as_numpy_iterator())
        inputs = np.concatenate([x for x, _ in batches])
        if splits.task == "detection":
            return inputs, [(np.asarray(b, np.float32).reshape(-1, 4), np.asarray(c, np.int32))
                            for _, y in batches for b, c in zip(y["boxes"], y["classes"], strict=True)]
        return inputs, np.concatenate([y[..., 0] for _, y in batches])
    inputs = make_dataset(splits.test, spec, 512, len(splits.class_names), with_labels=False)
    return np.concatenate(list(inputs.as_numpy_iterator())), splits.test.labels
