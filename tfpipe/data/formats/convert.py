"""Read a dataset in any format tfpipe knows; convert between COCO, VOC, YOLO and mask folders:
read, place the images (and class maps) where the target layout keeps them, write the target's
annotations."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tfpipe import io
from tfpipe.data.formats import classmaps, coco, folders, voc, yolo
from tfpipe.data.formats.records import BadSamples, Dataset, ImageRecord, check_image, safe_path
from tfpipe.errors import TfpipeError

# What each format's reader takes, and what its samples can teach (the sample contract's targets:
# labels, boxes, masks). VOC and COCO give masks when their samples have them (SegmentationClass
# PNGs; polygons or RLE). A reader is called with (dataset path, on_bad_sample, targets or None).
READERS: dict[str, Callable[..., Dataset]] = {
    "coco": lambda src, on_bad_sample, targets=None: coco.read(src, on_bad_sample=on_bad_sample),
    "voc": lambda src, on_bad_sample, targets=None: voc.read(
        src, on_bad_sample=on_bad_sample, image_sets="Segmentation" if targets == "masks" else "Main"),
    "yolo": lambda src, on_bad_sample, targets=None: yolo.read(src / "data.yaml" if src.is_dir() else src,
                                                               on_bad_sample),
    "masks": lambda src, on_bad_sample, targets=None: folders.read_masks(src, on_bad_sample),
    "folders": lambda src, on_bad_sample, targets=None: folders.read_classes(src, on_bad_sample),
}
GIVES = {"coco": ("boxes", "masks", "instances"), "voc": ("boxes", "masks"), "yolo": ("boxes",), "masks": ("masks",),
         "folders": ("labels",)}
WRITERS: dict[str, Callable[[Dataset, Path], Path]] = {"coco": coco.write, "voc": voc.write, "yolo": yolo.write,
                                                      "masks": folders.write_masks}
FORMATS = tuple(WRITERS)  # what convert reads and writes

# Where each layout keeps an image, and a class map, by split and file name.
IMAGE_PLACES: dict[str, Callable[[str, str], str]] = {
    "coco": lambda split, name: f"images/{split}/{name}",
    "voc": lambda split, name: f"JPEGImages/{name}",
    "yolo": lambda split, name: f"images/{split}/{name}",
    "masks": lambda split, name: f"images/{split}/{name}",
}
MASK_PLACES: dict[str, Callable[[str, str], str]] = {
    "voc": lambda split, name: f"SegmentationClass/{Path(name).stem}.png",
    "masks": lambda split, name: f"masks/{split}/{Path(name).stem}.png",
}


def read(kind: str, src: Path, on_bad_sample: str = "error") -> Dataset:
    if kind not in READERS:
        raise TfpipeError(f"format {kind!r} is not known", f"use one of: {', '.join(READERS)}")
    return READERS[kind](Path(src), on_bad_sample)


def place_images(dataset: Dataset, kind: str, dst: Path, bad: BadSamples | None = None) -> Dataset:
    """Copy (hard-link when possible) every image to where layout `kind` keeps it under `dst`, and
    write its class map (a VOC-palette PNG) where the layout keeps those, if it has one.
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
            ids = None  # the class map, read before the image is placed so a bad one leaves nothing
            if kind in MASK_PLACES and classmaps.has_class_map(r):
                ids = bad.guard(classmaps.class_map, dataset.root, r)
                if ids is None:
                    continue
            destination = dst / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            if not destination.exists():
                try:
                    os.link(source.resolve(), destination)
                except OSError:  # another file system
                    shutil.copy2(source.resolve(), destination)
            mask = None if ids is None else MASK_PLACES[kind](split, Path(r.image).name)
            if mask:
                classmaps.write_png(dst / mask, ids)
            placed[split].append(replace(r, image=target, mask=mask))
    return Dataset(dataset.class_names, placed, Path(dst), bad.reasons, dataset.keypoint_names)


def dropped(dataset: Dataset, kind_to: str) -> str | None:
    """What the target format cannot hold, said in one line (None when nothing is lost)."""
    records = [r for split in dataset.splits.values() for r in split]
    instances = sum(1 for r in records for s in (r.segmentations or []) if s)
    maps = sum(1 for r in records if r.mask and not r.segmentations)
    if instances and kind_to in MASK_PLACES:
        return (f"Instances painted into class maps: {instances:,} instance masks became one class per pixel "
                f"({kind_to} holds no instances; convert --to coco keeps them)")
    if instances and kind_to != "coco":
        return f"Not carried: {instances:,} instance masks ({kind_to} holds boxes; convert --to coco keeps them)"
    if maps and kind_to not in MASK_PLACES:
        return (f"Not carried: {maps:,} class-map masks ({kind_to} holds no semantic masks; "
                f"convert --to {' or '.join(MASK_PLACES)} keeps them)")
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
        dataset = Dataset(dataset.class_names, dataset.splits, dataset.root, placed.skipped, dataset.keypoint_names)
        WRITERS[kind_to](placed, staging)
        if dataset.skipped:
            io.write_text(staging / "skipped_samples.txt", "".join(f"{reason}\n" for reason in dataset.skipped))
        if dst.exists():  # an empty folder
            dst.rmdir()
        os.replace(staging, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Dataset(placed.class_names, placed.splits, dst, dataset.skipped, placed.keypoint_names)
