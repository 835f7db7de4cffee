"""Convert a dataset between COCO, VOC and YOLO: read, place the images where the target layout
keeps them, write the target's annotations."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tfpipe import io
from tfpipe.data.formats import coco, voc, yolo
from tfpipe.data.formats.records import BadSamples, Dataset, ImageRecord, check_image, safe_path
from tfpipe.errors import TfpipeError

FORMATS = ("coco", "voc", "yolo")

# Where each layout keeps an image, by split and file name.
IMAGE_PLACES: dict[str, Callable[[str, str], str]] = {
    "coco": lambda split, name: f"images/{split}/{name}",
    "voc": lambda split, name: f"JPEGImages/{name}",
    "yolo": lambda split, name: f"images/{split}/{name}",
}


def read(kind: str, src: Path, on_bad_sample: str = "error") -> Dataset:
    src = Path(src)
    if kind == "coco":
        return coco.read(src, on_bad_sample=on_bad_sample)
    if kind == "voc":
        return voc.read(src, on_bad_sample=on_bad_sample)
    if kind == "yolo":
        return yolo.read(src / "data.yaml" if src.is_dir() else src, on_bad_sample)
    raise TfpipeError(f"format {kind!r} is not known", f"use one of: {', '.join(FORMATS)}")


def place_images(dataset: Dataset, kind: str, dst: Path, bad: BadSamples | None = None) -> Dataset:
    """Copy (hard-link when possible) every image to where layout `kind` keeps it under `dst`.
    Each image is opened first: it must be a file inside the dataset (its real path: a symlink to
    /etc/passwd is not an image of the dataset), decode whole, and have its annotation's size.
    `bad` decides whether a bad image stops the conversion or leaves its sample out."""
    bad = bad or BadSamples()
    root = dataset.root.resolve()
    placed, taken = {}, {}

    def source_of(r: ImageRecord) -> Path:
        source = safe_path(dataset.root, r.image, str(dataset.root))
        if not source.is_file():
            raise TfpipeError(f"{source}: image not found", "the annotations name an image that is not there")
        if not source.resolve().is_relative_to(root):
            raise TfpipeError(f"{source}: links to {source.resolve()}, outside the dataset {root}",
                              "copy the image into the dataset instead of linking to it")
        check_image(source, r.width, r.height, r.image)
        return source

    for split, records in dataset.splits.items():
        placed[split] = []
        for r in records:
            target = IMAGE_PLACES[kind](split, Path(r.image).name)
            if taken.setdefault(target, r.image) != r.image:
                raise TfpipeError(f"{r.image}: its place in the {kind} layout, {target}, is also {taken[target]}'s",
                                  "image file names must be unique (per split for COCO and YOLO)")
            source = bad.guard(source_of, r)
            if source is None:
                continue
            destination = dst / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            if not destination.exists():
                try:
                    os.link(source.resolve(), destination)
                except OSError:  # another file system
                    shutil.copy2(source.resolve(), destination)
            placed[split].append(replace(r, image=target))
    return Dataset(dataset.class_names, placed, Path(dst), bad.reasons)


def dropped(dataset: Dataset, kind_to: str) -> str | None:
    """What the target format cannot hold, said in one line (None when nothing is lost)."""
    masks = sum(1 for records in dataset.splits.values() for r in records for s in (r.segmentations or []) if s)
    if masks and kind_to in ("voc", "yolo"):
        return (f"Not carried: {masks:,} instance masks ({kind_to} annotations hold boxes and classes only; "
                "convert --to coco keeps them)")
    return None


def convert(kind_from: str, kind_to: str, src: Path, dst: Path, on_bad_sample: str = "error") -> Dataset:
    """The converted dataset in the new folder `dst`; with on_bad_sample 'skip', bad samples are
    left out and their reasons written to DST/skipped_samples.txt. It is built in a temporary
    folder beside `dst` and renamed into place, so a failure leaves no half-written dataset, and
    an existing non-empty `dst` is refused rather than overwritten."""
    if kind_to not in FORMATS:
        raise TfpipeError(f"--to {kind_to!r} is not known", f"use one of: {', '.join(FORMATS)}")
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise TfpipeError(f"{dst}: the destination is the source", "write the converted dataset to another folder")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise TfpipeError(f"{dst}: exists and is not empty", "give a new folder for the converted dataset")
    dataset = read(kind_from, src, on_bad_sample)
    staging = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    bad = BadSamples(on_bad_sample)
    bad.reasons = list(dataset.skipped)
    try:
        placed = place_images(dataset, kind_to, staging, bad)
        dataset = Dataset(dataset.class_names, dataset.splits, dataset.root, placed.skipped)
        {"coco": coco.write, "voc": voc.write, "yolo": yolo.write}[kind_to](placed, staging)
        if dataset.skipped:
            io.write_text(staging / "skipped_samples.txt", "".join(f"{reason}\n" for reason in dataset.skipped))
        if dst.exists():  # an empty folder
            dst.rmdir()
        os.replace(staging, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Dataset(placed.class_names, placed.splits, dst, dataset.skipped)
