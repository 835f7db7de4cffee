"""Plain folders: image/mask pairs for segmentation, and one subfolder per class for classification.

Segmentation: images/<split>/<stem>.<jpg|png|...> with masks/<split>/<stem>.png, a class id per
pixel (255 = void; palette PNGs hold the ids as their indices). Without split folders
(images/<stem>.jpg) everything is one split 'all'. Class names come from labels.txt in the root.

Classification: <root>/<split>/<class>/*.jpg, or <root>/<class>/*.jpg as one split 'all'.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe.data.formats.records import IMAGE_SUFFIXES, BadSamples, Dataset, ImageRecord, image_size, listed
from tfpipe.errors import TfpipeError

SPLIT_NAMES = ("train", "val", "valid", "test")


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
    class_names = _labels_file(root)
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
            ids = np.unique(np.asarray(m))
        unknown = [int(i) for i in ids if i >= len(class_names) and i != 255]
        if unknown:
            raise TfpipeError(f"{mask}: class ids {listed(unknown)} are not in labels.txt ({len(class_names)} classes)",
                              f"use 0..{len(class_names) - 1}, or 255 for void")
        return ImageRecord(image.relative_to(root).as_posix(), width, height, mask=mask.relative_to(root).as_posix())

    records = {}
    for split, folder in splits.items():
        images = _images(folder)
        if not images:
            raise TfpipeError(f"{folder}: no images", f"expected {', '.join(IMAGE_SUFFIXES)} files")
        records[split] = [r for r in (bad.guard(pair, image) for image in images) if r is not None]
    return Dataset(class_names, records, root, bad.reasons)


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
