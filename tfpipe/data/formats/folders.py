"""Plain folders: image/mask pairs for segmentation, and one subfolder per class for classification.

Segmentation: images/<split>/<stem>.<jpg|png|...> with masks/<split>/<stem>.png, a class id per
pixel (255 = void; palette PNGs hold the ids as their indices). Without split folders
(images/<stem>.jpg) everything is one split 'all'. labels.txt in the root names the ids, one per
line: line 0 is id 0, the background; the dataset's classes are the lines after it (id c + 1 is
class c, as in VOC's SegmentationClass).

Classification: <root>/<split>/<class>/*.jpg, or <root>/<class>/*.jpg as one split 'all'.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe import io
from tfpipe.data.formats.classmaps import VOID, read_png
from tfpipe.data.formats.records import IMAGE_SUFFIXES, BadSamples, Dataset, ImageRecord, image_size, listed
from tfpipe.errors import TfpipeError

SPLIT_NAMES = ("train", "val", "valid", "test")
BACKGROUND = "background"  # the name written for mask id 0


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _labels_file(root: Path) -> tuple[str, ...]:
    path = root / "labels.txt"
    if not path.is_file():
        raise TfpipeError(f"{path}: file not found", "list the class names, one per line, class 0 first")
    names = tuple(n.strip() for n in path.read_text().splitlines() if n.strip())
    if not names:
        raise TfpipeError(f"{path}: no class names", "list the class names, one per line, class 0 first")
    return names


def read_masks(root: Path, on_bad_sample: str = "error") -> Dataset:
    root = Path(root)
    ids = _labels_file(root)
    if len(ids) < 2:
        raise TfpipeError(f"{root / 'labels.txt'}: names the background only",
                          "line 0 names id 0 (the background), the next lines the classes")
    if not (root / "images").is_dir():
        raise TfpipeError(f"{root / 'images'}: folder not found", "expected images/ and masks/ folders")
    split_dirs = sorted(p for p in (root / "images").iterdir() if p.is_dir())
    splits = {p.name: p for p in split_dirs} or {"all": root / "images"}
    bad = BadSamples(on_bad_sample)

    def pair(image: Path) -> ImageRecord:
        from PIL import Image

        relative = image.relative_to(root / "images")
        mask = root / "masks" / relative.with_suffix(".png")
        if not mask.is_file():
            raise TfpipeError(f"{image}: no mask {mask}", "each image needs masks/<same path>.png")
        width, height = image_size(image)
        with Image.open(mask) as m:
            if m.size != (width, height):
                raise TfpipeError(f"{mask}: mask is {m.size[0]}x{m.size[1]} but its image is {width}x{height}",
                                  "a mask has its image's size")
        check_class_map(mask, read_png(mask), len(ids) - 1)
        return ImageRecord(image.relative_to(root).as_posix(), width, height, mask=mask.relative_to(root).as_posix())

    records = {}
    for split, folder in splits.items():
        images = _images(folder)
        if not images:
            raise TfpipeError(f"{folder}: no images", f"expected {', '.join(IMAGE_SUFFIXES)} files")
        records[split] = [r for r in (bad.guard(pair, image) for image in images) if r is not None]
    return Dataset(ids[1:], records, root, bad.reasons)


def check_class_map(path: Path, ids: np.ndarray, num_classes: int) -> None:
    """Every id of a class map is the background (0), a class (1..num_classes) or void (255)."""
    found = np.unique(ids)
    unknown = [int(i) for i in found if num_classes < i < VOID]
    if unknown:
        raise TfpipeError(f"{path}: class ids {listed(unknown)} are not in the {num_classes} classes",
                          f"use 0 (background), 1..{num_classes} (classes) or 255 (void)")


def write_masks(dataset: Dataset, dst: Path) -> Path:
    """labels.txt (line 0 the background) under `dst`; images and masks are expected at
    images/<split>/ and masks/<split>/ (convert places them)."""
    io.write_text(Path(dst) / "labels.txt", "".join(f"{n}\n" for n in (BACKGROUND, *dataset.class_names)))
    return Path(dst)


def read_classes(root: Path, on_bad_sample: str = "error") -> Dataset:
    root = Path(root)
    if not root.is_dir():
        raise TfpipeError(f"{root}: folder not found", "one subfolder per class, or per split then per class")
    subfolders = sorted(p for p in root.iterdir() if p.is_dir())
    split_dirs = [p for p in subfolders if p.name in SPLIT_NAMES]
    splits = {p.name: p for p in split_dirs} if split_dirs else {"all": root}
    class_lists = {split: sorted(p.name for p in folder.iterdir() if p.is_dir()) for split, folder in splits.items()}
    class_names = tuple(sorted(set().union(*class_lists.values())))
    if not class_names:
        raise TfpipeError(f"{root}: no class folders", "one subfolder of images per class")
    bad = BadSamples(on_bad_sample)

    def one(image: Path, label: int) -> ImageRecord:
        width, height = image_size(image)
        return ImageRecord(image.relative_to(root).as_posix(), width, height, label=label)

    records = {}
    for split, folder in splits.items():
        found = [(image, k) for k, name in enumerate(class_names) if (folder / name).is_dir()
                 for image in _images(folder / name)]
        if not found:
            raise TfpipeError(f"{folder}: the split is empty",
                              f"put {', '.join(IMAGE_SUFFIXES)} files in class folders")
        records[split] = [r for r in (bad.guard(one, image, k) for image, k in found) if r is not None]
    return Dataset(class_names, records, root, bad.reasons)
