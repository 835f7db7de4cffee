"""A dataset of your own as the one dataset interface (`Splits`): data.format names the reader
(tfpipe.data.formats.convert.READERS: coco, voc, yolo, masks, folders), data.train / val / test
where its splits are (see DataConfig).

Loading checks what training would otherwise trip over hours later, so a bad sample stops the run
before any stage writes (or, with data.on_bad_sample: skip, is left out and listed): every image
is found and decodes whole at its annotation's size; all images share one colour mode (grayscale
or colour); every class map's ids are the background, a class or void; every class is one of the
model's (data.classes). Images are only checked here; training decodes them a batch at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from tfpipe.config import DataConfig
from tfpipe.data.formats import Dataset, ImageRecord, safe_path
from tfpipe.data.formats.classmaps import VOID, class_map, has_class_map
from tfpipe.data.formats.convert import GIVES, READERS
from tfpipe.data.formats.records import BadSamples
from tfpipe.data.pipeline import RecordSplit, Splits
from tfpipe.errors import TfpipeError

SPLIT_NAMES = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
GRAYSCALE = ("1", "L", "LA")  # Pillow modes of grey
ACCEPTED_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA")  # what tf.io.decode_image turns into 8-bit RGB


def load(cfg: DataConfig, targets: str) -> Splits:
    """The train, val and test splits of data.format's dataset, for a task learning from `targets`."""
    kind = cfg.format
    if kind not in READERS:
        raise TfpipeError(f"data.format: {kind!r} is not accepted", f"use one of: {', '.join(READERS)}")
    if targets not in GIVES[kind]:
        formats = [k for k, given in GIVES.items() if targets in given]
        raise TfpipeError(f"data.format: {kind} gives {' and '.join(GIVES[kind])}, this task learns from {targets}",
                          f"use a dataset in {', '.join(formats)}")
    datasets: dict[str, Dataset] = {}

    def read(key: str) -> Dataset:  # data.train and data.val are often one dataset: read it once
        path = Path(getattr(cfg, key)).expanduser()
        if not path.exists():
            raise TfpipeError(f"data.{key}: {path}: not found", f"a {kind} dataset (a folder or file)")
        resolved = str(path.resolve())
        if resolved not in datasets:
            datasets[resolved] = READERS[kind](path, cfg.on_bad_sample, targets)
        return datasets[resolved]

    train_set = read("train")
    parts = {"train": (train_set, _split_name(train_set, "train", cfg.train))}
    notes = []
    for key in ("val", "test"):
        if getattr(cfg, key) is not None:
            dataset = read(key)
            parts[key] = (dataset, _split_name(dataset, key, getattr(cfg, key)))
            if dataset is train_set and parts[key][1] == parts["train"][1]:
                raise TfpipeError(f"data.{key}: {getattr(cfg, key)} gives the same split as data.train",
                                  f"name a dataset with a {key} split, or leave data.{key} out")
        elif len(train_set.splits) > 1 and (found := _find(train_set, key)):
            parts[key] = (train_set, found)
    class_names = tuple(cfg.classes) if cfg.classes else train_set.class_names
    bad = BadSamples(cfg.on_bad_sample)
    for dataset in datasets.values():
        bad.reasons += dataset.skipped  # what the readers left out
    records = {}
    for key, (dataset, split) in parts.items():
        where = f"data.{key}: {getattr(cfg, key) or cfg.train}"
        found = dataset.splits[split]
        if not found:
            raise TfpipeError(f"{where}: split {split!r} is empty", "every split needs at least one image")
        relabel = _relabeller(dataset.class_names, class_names, targets)
        found = [r for r in (bad.guard(relabel, r) for r in found) if r is not None]
        records[key] = _check_samples(dataset, found, targets, class_names, bad)
    _one_colour_mode(records, {key: dataset for key, (dataset, _) in parts.items()}, bad)
    for key, found in records.items():
        if not found:
            raise TfpipeError(f"data.{key}: no usable images ({len(bad.reasons):,} left out: {bad.reasons[0]})",
                              "fix the data, or give more")
    if "val" not in records:
        records["train"], records["val"] = _hold_out(records["train"], cfg.val_fraction, cfg.val_seed)
        notes.append(f"No val split given: {len(records['val']):,} of data.train's images "
                     f"({cfg.val_fraction:.0%}, seed {cfg.val_seed}) are held out as val")
    if cfg.train_limit:
        records["train"] = records["train"][: cfg.train_limit]
    test_key = "test" if "test" in records else "val"
    if cfg.test_limit:
        records[test_key] = records[test_key][: cfg.test_limit]

    def split(key: str) -> RecordSplit:
        dataset = parts.get(key, parts["train"])[0]
        lut = _mask_ids(dataset.class_names, class_names) if targets == "masks" else None
        return RecordSplit(Dataset(class_names, {key: records[key]}, dataset.root,
                                   keypoint_names=dataset.keypoint_names), key, lut)

    val = split("val")
    test = split("test") if test_key == "test" else val
    name = Path(cfg.train).expanduser().resolve().name
    return Splits(name, split("train"), val, test, test_key, class_names, skipped=tuple(bad.reasons),
                  notes=tuple(notes), keypoint_names=train_set.keypoint_names)


def _find(dataset: Dataset, key: str) -> str | None:
    return next((name for name in SPLIT_NAMES[key] if name in dataset.splits), None)


def _split_name(dataset: Dataset, key: str, path: str) -> str:
    """The split data.`key` means: the dataset's only one, else the one named like the key."""
    if len(dataset.splits) == 1:
        return next(iter(dataset.splits))
    found = _find(dataset, key)
    if found is None:
        raise TfpipeError(f"data.{key}: {path} has the splits {', '.join(dataset.splits)}, none named "
                          f"{' or '.join(SPLIT_NAMES[key])}", f"point data.{key} at a dataset with one split")
    return found


def _relabeller(source: tuple[str, ...], model: tuple[str, ...], targets: str) -> Callable[[ImageRecord], ImageRecord]:
    """A record with its class ids (label, box classes) moved from the dataset's names to the
    model's; a class outside the model's is the record's error. Class maps keep their ids
    (`_mask_ids` maps them as they are read)."""
    index = {name: model.index(name) for name in source if name in model}
    same = source == model

    def relabel(r: ImageRecord) -> ImageRecord:
        if same:
            return r
        for i, k in enumerate([r.label] if targets == "labels" else r.classes.tolist()):
            if source[k] not in index:
                thing = f"{r.image}: its folder" if targets == "labels" else r.origin(i)
                raise TfpipeError(f"{thing}: class {source[k]!r} is not in data.classes",
                                  f"add it to data.classes ({', '.join(model)}), or data.on_bad_sample: skip "
                                  "leaves its images out")
        if targets == "labels":
            return replace(r, label=index[source[r.label]])
        return replace(r, classes=np.array([index[source[k]] for k in r.classes], np.int32))

    return relabel


def _mask_ids(source: tuple[str, ...], model: tuple[str, ...]) -> np.ndarray | None:
    """uint8 [256]: a class-map PNG's id -> the model's (0 background and 255 void stay); ids of
    classes the model lacks map to void. None when nothing moves. (Maps painted from COCO
    instances are painted with the model's classes already.)"""
    if source == model:
        return None
    ids = np.full(256, VOID, np.uint8)
    ids[0] = 0
    for k, name in enumerate(source):
        if name in model:
            ids[k + 1] = model.index(name) + 1
    return ids


def _check_one(root: Path, r: ImageRecord, targets: str, source_names: tuple[str, ...],
               model_names: tuple[str, ...]) -> str:
    """The record's image decodes whole at its declared size in an accepted mode, and its class
    map's ids are known; returns 'grayscale' or 'colour'."""
    from PIL import Image, UnidentifiedImageError

    path = safe_path(root, r.image, str(root))
    if not path.is_file():
        raise TfpipeError(f"{path}: image not found", "the annotations name an image that is not there")
    try:
        with Image.open(path) as image:
            size, mode = image.size, image.mode
            if image.format == "JPEG":
                image.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))  # all of the file, 1/8 the work
            image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise TfpipeError(f"{path}: unreadable or corrupt image ({e})",
                          "replace the file, or data.on_bad_sample: skip leaves it out") from None
    if size != (r.width, r.height):
        raise TfpipeError(f"{path}: is {size[0]}x{size[1]}, its annotation says {r.width}x{r.height}",
                          "fix the annotation's size (boxes are checked against it)")
    if mode not in ACCEPTED_MODES:
        raise TfpipeError(f"{path}: a {mode} image", f"convert it to 8-bit RGB or grayscale "
                                                     f"(accepted modes: {', '.join(ACCEPTED_MODES)})")
    if targets == "instances":
        missing = [i for i, s in enumerate(r.segmentations or [None] * len(r.classes)) if not s]
        if missing:
            raise TfpipeError(f"{r.origin(missing[0])}: no instance segmentation",
                              "instance segmentation needs polygons or an RLE per object (COCO `segmentation`)")
    if targets == "masks":
        if not has_class_map(r) and len(r.classes):
            raise TfpipeError(f"{path}: no class map for its {len(r.classes)} objects",
                              "semantic segmentation needs a class-map PNG (VOC: SegmentationClass/<id>.png) or "
                              "COCO polygons/RLE")
        ids = class_map(root, r)
        where = r.mask or r.image
        if ids.shape != (r.height, r.width):
            raise TfpipeError(f"{where}: mask is {ids.shape[1]}x{ids.shape[0]}, its image {r.width}x{r.height}",
                              "a mask has its image's size")
        # a PNG holds the dataset's ids; a map painted from COCO instances already the model's classes
        for k in np.unique(ids).tolist() if r.mask else ():
            if k in (0, VOID):
                continue
            if k > len(source_names):
                raise TfpipeError(f"{where}: class id {k} is not one of the {len(source_names)} classes",
                                  f"use 0 (background), 1..{len(source_names)} or 255 (void)")
            if source_names[k - 1] not in model_names:
                raise TfpipeError(f"{where}: class id {k} ({source_names[k - 1]!r}) is not in data.classes",
                                  f"add it to data.classes ({', '.join(model_names)}), or data.on_bad_sample: "
                                  "skip leaves its images out")
    return "grayscale" if mode in GRAYSCALE else "colour"


def _check_samples(dataset: Dataset, records: list[ImageRecord], targets: str, model_names: tuple[str, ...],
                   bad: BadSamples) -> list[ImageRecord]:
    """The records whose samples pass `_check_one` (threads: Pillow decodes without the GIL), each
    given its colour mode in `record.mode`; the first failure in the split's order is the one raised."""

    def check(r: ImageRecord):
        try:
            return _check_one(dataset.root, r, targets, dataset.class_names, model_names)
        except TfpipeError as e:
            return e

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(check, records))
    kept = []
    for r, result in zip(records, results, strict=True):
        mode = bad.guard(_raise_if_error, result)
        if mode is not None:
            r.mode = mode
            kept.append(r)
    return kept


def _raise_if_error(result):
    if isinstance(result, TfpipeError):
        raise result
    return result


def _one_colour_mode(records: dict[str, list[ImageRecord]], datasets: dict[str, Dataset], bad: BadSamples) -> None:
    """All images grayscale or all colour: a dataset mixing them is a mistake more often than not
    (scans among photos, a channel dropped by an export). The fewer kind is the error."""
    every = [r for found in records.values() for r in found]
    grey = sum(r.mode == "grayscale" for r in every)
    if grey in (0, len(every)):
        return
    odd = "grayscale" if grey <= len(every) - grey else "colour"
    count = grey if odd == "grayscale" else len(every) - grey
    for key, found in records.items():
        root = datasets[key].root
        records[key] = [r for r in found if bad.guard(_same_mode, r, odd, count, len(every), root) is not None]


def _same_mode(r: ImageRecord, odd: str, count: int, total: int, root: Path) -> ImageRecord:
    if r.mode == odd:
        raise TfpipeError(f"{root / r.image}: a {odd} image in a dataset of mixed grayscale and colour images "
                          f"({count:,} of {total:,} are {odd})",
                          "convert the images to one mode, or data.on_bad_sample: skip leaves out the "
                          f"{count:,} {odd} ones")
    return r


def _hold_out(records: list[ImageRecord], fraction: float, seed: int) -> tuple[list, list]:
    """(train, val): a seeded random `fraction` of the records held out, both in the original order."""
    if len(records) < 2:
        raise TfpipeError(f"data.train: {len(records)} image, none to hold out as val", "give data.val, or more images")
    count = min(len(records) - 1, max(1, round(len(records) * fraction)))
    held = set(np.random.default_rng(seed).choice(len(records), size=count, replace=False).tolist())
    return ([r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held])

