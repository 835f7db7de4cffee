"""YOLO txt: data.yaml (names, split image folders) and one labels/<...>/<stem>.txt per image, each
line `class cx cy w h` normalised to the image size (Ultralytics' layout: images/<split>/x.jpg is
labelled by labels/<split>/x.txt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from tfpipe import io
from tfpipe.data.formats.records import (
    IMAGE_SUFFIXES,
    BadSamples,
    Dataset,
    ImageRecord,
    check_boxes,
    check_class,
    image_size,
)
from tfpipe.errors import TfpipeError

SPLITS = ("train", "val", "test")  # Ultralytics' keys
NOT_SPLITS = {"path", "names", "nc", "download", "yaml_file"}


def label_path(image: Path) -> Path:
    """images/<...>/x.jpg -> labels/<...>/x.txt (the last 'images' folder in the path)."""
    parts = list(image.parts)
    if "images" not in parts:
        raise TfpipeError(f"{image}: no 'images' folder in its path", "YOLO keeps images under images/<split>/")
    index = len(parts) - 1 - parts[::-1].index("images")
    parts[index] = "labels"
    return Path(*parts).with_suffix(".txt")


def _names(data: dict, path: Path) -> tuple[str, ...]:
    names = data.get("names")
    if isinstance(names, dict) and all(isinstance(k, int) for k in names):
        if sorted(names) != list(range(len(names))):
            raise TfpipeError(f"{path}: names: ids {sorted(names)} are not 0..{len(names) - 1}",
                              "number the classes 0..C-1")
        return tuple(str(names[k]) for k in range(len(names)))
    if isinstance(names, list) and names:
        return tuple(str(n) for n in names)
    raise TfpipeError(f"{path}: field 'names' is missing or empty", "a list of class names, or {id: name}")


def read_labels(path: Path, width: int, height: int, class_names: tuple[str, ...]
                ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(boxes xyxy in pixels, classes, 'file:line' of each object) of one label file."""
    boxes, classes, origins = [], [], []
    if path.is_file():  # no label file: an image without objects
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            fields = line.split()
            try:
                class_id, cx, cy, w, h = int(fields[0]), *(float(v) for v in fields[1:5])
            except (ValueError, IndexError):
                raise TfpipeError(f"{where}: {line.strip()!r} is not 'class cx cy w h'",
                                  "an integer class and four normalised numbers") from None
            if len(fields) != 5:
                raise TfpipeError(f"{where}: {len(fields)} fields", "detection labels have 5: class cx cy w h")
            check_class(class_id, class_names, where)
            boxes.append([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height])
            classes.append(class_id)
            origins.append(where)
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int32), origins


def read(data_yaml: Path, on_bad_sample: str = "error") -> Dataset:
    data_yaml = Path(data_yaml)
    try:
        data = yaml.safe_load(data_yaml.read_text())
    except FileNotFoundError:
        raise TfpipeError(f"{data_yaml}: file not found", "give the dataset's data.yaml") from None
    except yaml.YAMLError as e:
        raise TfpipeError(f"{data_yaml}: not valid YAML ({' '.join(str(e).split())})", "fix the YAML") from None
    if not isinstance(data, dict):
        raise TfpipeError(f"{data_yaml}: the top level is not a mapping", "expected names: and train:/val: keys")
    class_names = _names(data, data_yaml)
    bad = BadSamples(on_bad_sample)
    root = (data_yaml.parent / data["path"]) if data.get("path") else data_yaml.parent
    splits = {}
    keys = [k for k in SPLITS if data.get(k)]
    if not keys:  # a single-split export of an older tfpipe (`all: images/all`): any key naming a folder
        keys = [k for k, v in data.items() if k not in NOT_SPLITS and isinstance(v, str) and (root / v).is_dir()]
    for split in keys:  # Roboflow's folder is 'valid', its key 'val'
        if not data.get(split):
            continue
        folder = root / str(data[split])
        if not folder.is_dir() and str(data[split]).startswith("../"):
            folder = root / str(data[split])[3:]  # Roboflow writes ../train/images beside data.yaml
        if not folder.is_dir():
            if split == "test":  # exporters keep the key when there is no test split
                continue
            raise TfpipeError(f"{data_yaml}: {split}: folder {folder} does not exist", "name a folder of images")
        images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise TfpipeError(f"{data_yaml}: {split}: no images in {folder}", f"expected {', '.join(IMAGE_SUFFIXES)}")
        splits[split] = [r for r in (bad.guard(_read_one, image, root, class_names) for image in images)
                         if r is not None]
    if not splits:
        raise TfpipeError(f"{data_yaml}: no split", "give at least train: (and val:) image folders")
    return Dataset(class_names, splits, root, bad.reasons)


def _read_one(image: Path, root: Path, class_names: tuple[str, ...]) -> ImageRecord:
    width, height = image_size(image)
    boxes, classes, origins = read_labels(label_path(image), width, height, class_names)
    check_boxes(boxes, width, height, str(label_path(image)))
    return ImageRecord(image.relative_to(root).as_posix(), width, height, boxes, classes,
                       np.zeros(len(classes), bool), np.zeros(len(classes), bool), origins=origins)


def write(dataset: Dataset, dst: Path) -> Path:
    """data.yaml and labels/ beside the images, which are expected at `dst`/<record.image> with
    'images' in their path. Crowd boxes are left out (YOLO has no such flag)."""
    dst = Path(dst)
    folders = {}
    for split, records in dataset.splits.items():
        for r in records:
            lines = []
            for (x1, y1, x2, y2), c, crowd in zip(r.boxes.tolist(), r.classes.tolist(), r.iscrowd.tolist(),
                                                  strict=True):
                if not crowd:
                    cx, cy = (x1 + x2) / 2 / r.width, (y1 + y2) / 2 / r.height
                    lines.append(f"{c} {cx:.6f} {cy:.6f} {(x2 - x1) / r.width:.6f} {(y2 - y1) / r.height:.6f}\n")
            io.write_text(dst / label_path(Path(r.image)), "".join(lines))
        parents = {Path(r.image).parent.as_posix() for r in records}
        if len(parents) != 1:
            raise TfpipeError(f"split {split}: images in {len(parents)} folders ({', '.join(sorted(parents)[:3])})",
                              "YOLO's data.yaml names one image folder per split")
        folders[split] = parents.pop()
    if len(folders) == 1 and not set(folders) & set(SPLITS):
        # one split under another name (VOC without ImageSets: 'all'): train:, the key Ultralytics needs
        folders = {"train": next(iter(folders.values()))}
    io.write_text(dst / "data.yaml", yaml.safe_dump({"path": ".", **folders,
                                                     "names": dict(enumerate(dataset.class_names))},
                                                    sort_keys=False))
    return dst
