"""The one dataset interface: `Splits` of `Split`s, whatever the source.

A `Split` is a sequence of samples that can make tf.data batches of (model input, target) for
training, and NumPy arrays for calibration and evaluation, always through the one preprocess. Two
sources implement it: `ArraySplit` (images and labels in memory: Fashion-MNIST) and `RecordSplit`
(a `Dataset` on disk: FashionScenes, or a dataset of your own in COCO, VOC, YOLO, mask folders or
class folders, read by tfpipe.data.files). `Splits` names the
training, held-out and test splits, the class names and which target the task learns from
(`TARGETS`, keys of the sample contract in design.md); tasks (tfpipe.tasks) load them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Protocol

import numpy as np

from tfpipe.backend import tf
from tfpipe.config import AugmentConfig
from tfpipe.data.formats import Dataset
from tfpipe.data.preprocess import preprocess
from tfpipe.errors import TfpipeError
from tfpipe.runtime.contract import PreprocessSpec

# labels: an int class per image; boxes: xyxy pixel boxes and their classes; masks: a class map;
# instances: boxes and classes with each object's mask and keypoints
TARGETS = ("labels", "boxes", "masks", "instances")


class Split(Protocol):
    eval_batch: int  # images preprocessed at a time for evaluation

    def __len__(self) -> int: ...

    def subset(self, indices: np.ndarray) -> Split:
        """The samples `indices`, in that order."""

    def batches(self, spec: PreprocessSpec, batch_size: int, targets: str, num_classes: int, *,
                training: bool = False, augment: AugmentConfig | None = None, seed: int = 0) -> tf.data.Dataset:
        """(model input, target) batches. Training shuffles, augments and drops the last partial
        batch; otherwise the order is the split's and nothing random happens."""

    def arrays(self, spec: PreprocessSpec, targets: str, batch_size: int) -> tuple[np.ndarray, object]:
        """Every sample preprocessed, in order: model inputs float32 [N, H, W, C] and targets as
        the evaluator scores them (see `Splits.evaluation_arrays`)."""

    def originals(self, count: int, split_name: str) -> list[tuple[str, np.ndarray]]:
        """(name, uint8 pixels [h, w, c]) of the first `count` samples as stored, before any
        preprocessing: what a device is handed (golden vectors)."""


@dataclass(frozen=True)
class ArraySplit:
    images: np.ndarray  # uint8 [N, H, W, C], pixels 0..255
    labels: np.ndarray  # int32 [N]
    eval_batch: ClassVar[int] = 512  # in memory: large batches are cheap

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> ArraySplit:
        return ArraySplit(self.images[indices], self.labels[indices])

    def batches(self, spec: PreprocessSpec, batch_size: int, targets: str, num_classes: int, *,
                training: bool = False, augment: AugmentConfig | None = None, seed: int = 0) -> tf.data.Dataset:
        """Batches of (model input, one-hot label): one-hot before augmenting, as mixup and cutmix
        mix labels."""
        _only_labels(targets)
        from tfpipe.data.augment import build_augmenter

        augmenter = build_augmenter(augment, seed) if training and augment is not None else None
        return make_dataset(self, spec, batch_size, num_classes, training=training, augmenter=augmenter, seed=seed)

    def arrays(self, spec: PreprocessSpec, targets: str, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        _only_labels(targets)
        inputs = make_dataset(self, spec, batch_size, num_classes=1, with_labels=False)
        return np.concatenate(list(inputs.as_numpy_iterator())), self.labels

    def originals(self, count: int, split_name: str) -> list[tuple[str, np.ndarray]]:
        return [(f"{split_name}[{i}]", np.asarray(image, np.uint8).reshape(image.shape[0], image.shape[1], -1))
                for i, image in enumerate(self.images[:count])]


def _only_labels(targets: str) -> None:
    if targets != "labels":
        raise TfpipeError(f"this dataset has class labels only, the task needs {targets}",
                          "use an annotated dataset (data.builtin: fashion_scenes, or data.format)")


def make_dataset(split: ArraySplit, spec: PreprocessSpec, batch_size: int, num_classes: int, *,
                 training: bool = False, augmenter=None, seed: int = 0, with_labels: bool = True) -> tf.data.Dataset:
    """An ArraySplit's batches of (model input, one-hot label), or model input alone with
    `with_labels=False`: batched first, then cast and preprocessed a batch at a time."""
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


@dataclass(frozen=True)
class RecordSplit:
    """One split of a dataset on disk, read by data/annotated.py. `mask_ids`: uint8 [256] mapping
    the class maps' ids to the model's (data.classes may reorder or drop classes), or None."""

    dataset: Dataset
    split: str
    mask_ids: np.ndarray | None = None
    eval_batch: ClassVar[int] = 64  # decoded from disk a sample at a time

    def __len__(self) -> int:
        return len(self.dataset.splits[self.split])

    def subset(self, indices: np.ndarray) -> RecordSplit:
        records = self.dataset.splits[self.split]
        return replace(self, dataset=replace(self.dataset, splits={**self.dataset.splits,
                                                                   self.split: [records[i] for i in indices]}))

    def batches(self, spec: PreprocessSpec, batch_size: int, targets: str, num_classes: int, *,
                training: bool = False, augment: AugmentConfig | None = None, seed: int = 0) -> tf.data.Dataset:
        from tfpipe.data.annotated import make_annotated_dataset

        return make_annotated_dataset(self.dataset, self.split, spec, batch_size, targets, training=training,
                                      augment=augment, seed=seed, num_classes=num_classes, mask_ids=self.mask_ids)

    def arrays(self, spec: PreprocessSpec, targets: str, batch_size: int):
        if targets == "labels":
            inputs = self.batches(spec, batch_size, targets, 1).map(lambda x, _: x)
            return (np.concatenate(list(inputs.as_numpy_iterator())),
                    np.array([r.label for r in self.dataset.splits[self.split]], np.int32))
        batches = list(self.batches(spec, batch_size, targets, 0).as_numpy_iterator())
        inputs = np.concatenate([x for x, _ in batches])
        if targets == "boxes":
            return inputs, [(np.asarray(b, np.float32).reshape(-1, 4), np.asarray(c, np.int32))
                            for _, y in batches for b, c in zip(y["boxes"], y["classes"], strict=True)]
        if targets == "instances":  # (boxes, classes, masks bool [N, H, W], keypoints [N, K, 3]) per image
            height, width = inputs.shape[1:3]
            return inputs, [(np.asarray(b, np.float32).reshape(-1, 4), np.asarray(c, np.int32),
                             np.asarray(m, np.float32).reshape(-1, height, width) > 0.5,
                             np.asarray(k, np.float32).reshape(len(c), -1, 3))
                            for _, y in batches for b, c, m, k in zip(y["boxes"], y["classes"], y["masks"],
                                                                       y["keypoints"], strict=True)]
        return inputs, np.concatenate([y[..., 0] for _, y in batches])

    def originals(self, count: int, split_name: str) -> list[tuple[str, np.ndarray]]:
        from PIL import Image

        out = []
        for record in self.dataset.splits[self.split][:count]:
            with Image.open(self.dataset.root / record.image) as image:
                out.append((record.image, np.asarray(image.convert("RGB"), np.uint8)))
        return out


@dataclass(frozen=True)
class Splits:
    """A dataset as a task sees it. `val` is held out of training: it watches over-fitting and
    tunes conversion choices (--max-drop); `test` is what the evaluator scores. A source without
    a third split (FashionScenes, like Pascal VOC) uses its val split for both."""

    name: str  # the dataset, for reports
    train: Split
    val: Split | None
    test: Split
    test_name: str  # which of the source's splits `test` is
    class_names: tuple[str, ...]  # the model's classes (segmentation: background first)
    targets: str = "labels"  # what the task learns from, one of TARGETS
    skipped: tuple[str, ...] = ()  # why each bad sample was left out (data.on_bad_sample: skip)
    notes: tuple[str, ...] = ()  # what loading decided that the user should hear (a held-out val split)
    keypoint_names: tuple[str, ...] = ()  # the objects' keypoints (COCO categories' `keypoints`), if any

    @property
    def num_train(self) -> int:
        return len(self.train)

    def for_task(self, targets: str, class_names: tuple[str, ...]) -> Splits:
        if targets not in TARGETS:
            raise ValueError(f"targets {targets!r}: use one of {TARGETS}")
        return replace(self, targets=targets, class_names=tuple(class_names))

    def batches(self, split: Split, spec: PreprocessSpec, batch_size: int, **options) -> tf.data.Dataset:
        return split.batches(spec, batch_size, self.targets, len(self.class_names), **options)

    def calibration_inputs(self, spec: PreprocessSpec, count: int, seed: int = 0) -> np.ndarray:
        """`count` training images drawn at random (seeded), preprocessed: float32 [count, H, W, C]."""
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(self.num_train, size=min(count, self.num_train), replace=False))
        return self.train.subset(pick).arrays(spec, self.targets, 64)[0]

    def held_out_arrays(self, spec: PreprocessSpec) -> tuple[np.ndarray, object]:
        """Inputs and targets of the held-out split, so the test split stays unseen."""
        if self.val is None or not len(self.val):
            raise TfpipeError("data.val_samples is 0: selective quantization (--max-drop) needs a held-out split",
                              "set data.val_samples, e.g. --set data.val_samples=5000")
        return self.val.arrays(spec, self.targets, self.val.eval_batch)

    def evaluation_arrays(self, spec: PreprocessSpec) -> tuple[np.ndarray, object]:
        """The test split, preprocessed, in its order, never augmented: model inputs float32
        [N, H, W, C] and targets: labels int32 [N]; class maps int32 [N, H, W] with 255 = void at
        the model's input size; or, for boxes, one (boxes float32 [K, 4] x1 y1 x2 y2 in pixels of
        the model input, classes int32 [K]) pair per image."""
        return self.test.arrays(spec, self.targets, self.test.eval_batch)
