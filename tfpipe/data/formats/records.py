"""The in-memory dataset every format is read into and written from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeVar

import numpy as np

from tfpipe.errors import TfpipeError


@dataclass
class ImageRecord:
    image: str  # path relative to the dataset root, '/'-separated
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # float32 [N, 4] xyxy
    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # int32 [N], 0..C-1
    iscrowd: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # COCO: ignored by AP
    difficult: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # VOC: ignored by AP
    mask: str | None = None  # class-map PNG relative to the root (255 = void), for segmentation
    label: int | None = None  # the image's class, for classification
    segmentations: list | None = None  # COCO instance masks, one per box: polygons [[x, y, ...]] or RLE dicts
    mode: str | None = None  # 'grayscale' or 'colour', once the image has been checked (tfpipe.data.files)
    origins: list[str] | None = None  # where each object is written ('labels/a.txt:3'), for messages
    keypoints: np.ndarray | None = None  # COCO keypoints, float32 [N, K, 3] (x, y, visibility 0/1/2) per box

    def origin(self, i: int) -> str:
        """Where object `i` is written: its annotation file and line or entry, else the image."""
        return self.origins[i] if self.origins else f"{self.image}: object {i}"


@dataclass
class Dataset:
    class_names: tuple[str, ...]
    splits: dict[str, list[ImageRecord]]  # e.g. {"train": [...], "val": [...]}
    root: Path  # the folder image paths are relative to
    skipped: list[str] = field(default_factory=list)  # why each left-out sample was bad (on_bad_sample: skip)
    keypoint_names: tuple[str, ...] = ()  # COCO categories' `keypoints`, when the objects have them

    def summary(self) -> str:
        counts = ", ".join(f"{name} {len(records):,}" for name, records in self.splits.items())
        skipped = f"; {len(self.skipped):,} bad samples skipped" if self.skipped else ""
        return f"{len(self.class_names)} classes; images: {counts}{skipped}"


ON_BAD_SAMPLE = ("error", "skip")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")  # what Pillow reads


def listed(items: list, first: int = 10) -> str:
    """A list for a one-line message: all of a short one, else its count and the first few."""
    items = list(items)
    shown = ", ".join(str(i) for i in items[:first])
    return shown if len(items) <= first else f"{len(items)} of them, first {first}: {shown}"


def image_size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:  # reads the header only
            return image.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise TfpipeError(f"{path}: unreadable or corrupt image ({e})",
                          "expected a JPEG/PNG/BMP/WebP/TIFF file") from None


def check_image(path: Path, width: int, height: int, where: str) -> None:
    """The image file decodes whole (an empty or truncated file fails here, not in training) and
    has the size its annotation declares (boxes are checked against that size)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            size = image.size
            image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise TfpipeError(f"{path}: unreadable or corrupt image ({e})",
                          "replace the file, or leave the sample out with --on-bad-sample skip") from None
    if size != (width, height):
        raise TfpipeError(f"{where}: declares a {width}x{height} image, but {path} is {size[0]}x{size[1]}",
                          "fix the annotation's size (boxes are checked against it)")


T = TypeVar("T")


class BadSamples:
    """What a reader does with a bad sample: stop with its error ('error'), or leave the sample
    out and keep the reason ('skip'). Errors about the dataset as a whole always stop."""

    def __init__(self, policy: str = "error"):
        if policy not in ON_BAD_SAMPLE:
            raise TfpipeError(f"on_bad_sample: {policy!r} is not accepted", "use error or skip")
        self.policy = policy
        self.reasons: list[str] = []

    def guard(self, make: Callable[..., T], *args) -> T | None:
        """make(*args), or None (with the reason kept) when it raises a TfpipeError and bad samples
        are skipped."""
        try:
            return make(*args)
        except TfpipeError as e:
            if self.policy == "error":
                raise
            self.reasons.append(str(e))
            return None


def safe_path(root: Path, relative: str, where: str) -> Path:
    """`root / relative`, refusing absolute paths and '..' that would leave the dataset root."""
    posix = PurePosixPath(relative.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or not relative.strip():
        raise TfpipeError(f"{where}: file name {relative!r} leaves the dataset root",
                          "use a path relative to the dataset folder, without '..'")
    return root / Path(*posix.parts)


def check_boxes(boxes: np.ndarray, width: int, height: int, where: str, tolerance: float = 0.5) -> None:
    """Each box inside the image (within `tolerance` px, for tools that round outward) with x1 < x2, y1 < y2."""
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, np.float64)):
        if not np.all(np.isfinite([x1, y1, x2, y2])):
            raise TfpipeError(f"{where}: box {i} has a non-finite coordinate", "use numbers")
        if x2 <= x1 or y2 <= y1:
            raise TfpipeError(f"{where}: box {i} [{x1:g}, {y1:g}, {x2:g}, {y2:g}] has x2 <= x1 or y2 <= y1",
                              "boxes need a positive width and height")
        if x1 < -tolerance or y1 < -tolerance or x2 > width + tolerance or y2 > height + tolerance:
            raise TfpipeError(f"{where}: box {i} [{x1:g}, {y1:g}, {x2:g}, {y2:g}] is outside the "
                              f"{width}x{height} image", "boxes must lie inside their image")


def check_class(class_id: int, class_names: tuple[str, ...], where: str) -> int:
    if not 0 <= class_id < len(class_names):
        raise TfpipeError(f"{where}: class id {class_id} is not in the category list",
                          f"use 0..{len(class_names) - 1} ({', '.join(class_names[:5])}"
                          f"{', ...' if len(class_names) > 5 else ''})")
    return class_id
