"""COCO detection JSON: {"images", "annotations", "categories"}; bbox is [x, y, width, height].

Category ids (any integers, in any order) become contiguous ids 0..C-1 in the order of the
ids, names kept; labelme's pseudo-categories `_background_` and `__ignore__` are not object
classes and are left out. `iscrowd` is kept for evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tfpipe import io
from tfpipe.data.formats.records import BadSamples, Dataset, ImageRecord, check_boxes, safe_path
from tfpipe.errors import TfpipeError

NOT_CLASSES = ("_background_", "__ignore__")  # labelme's labels.txt conventions


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TfpipeError(f"{path}: file not found", "give the COCO annotation JSON") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TfpipeError(f"{path}: not valid JSON ({e})", "expected a COCO annotation file") from None
    if not isinstance(data, dict):
        raise TfpipeError(f"{path}: the top level is not an object", "expected {images, annotations, categories}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise TfpipeError(f"{path}: field '{key}' is missing or not a list",
                              "a COCO file has lists images, annotations and categories")
    return data


def _field(entry: dict, key: str, kind, where: str):
    value = entry.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TfpipeError(f"{where}: field '{key}' is missing or not {getattr(kind, '__name__', kind)}",
                          f"got {value!r}")
    return value


def _image_folder(root: Path, data: dict) -> str:
    """'' when file names are relative to the root, 'images/' when to root/images (CVAT, Roboflow)."""
    for image in data["images"][:1]:
        name = str(image.get("file_name", ""))
        if not (root / name).is_file() and (root / "images" / name).is_file():
            return "images/"
    return ""


def read_split(path: Path, image_root: Path, class_names: tuple[str, ...] | None = None,
               bad: BadSamples | None = None) -> tuple[tuple[str, ...], list[ImageRecord]]:
    """(class names, records) of one COCO file; `class_names` given: the file's categories must match.
    `bad` decides what a bad image or annotation does (default: stop with its error)."""
    bad = bad or BadSamples()
    path = Path(path)
    data = _load_json(path)
    folder = _image_folder(image_root, data)
    categories = sorted((c for c in data["categories"] if c.get("name") not in NOT_CLASSES),
                        key=lambda c: _field(c, "id", int, f"{path}: categories"))
    ids = {}
    for c in categories:
        if c["id"] in ids:
            raise TfpipeError(f"{path}: categories: id {c['id']} appears twice", "category ids must be unique")
        ids[c["id"]] = len(ids)
    names = tuple(str(_field(c, "name", str, f"{path}: category {c['id']}")) for c in categories)
    if class_names is not None and names != class_names:
        raise TfpipeError(f"{path}: categories {list(names)} differ from the other split's {list(class_names)}",
                          "every split must list the same categories")
    records: dict[int, ImageRecord] = {}
    bad_ids: set[int] = set()  # images left out with on_bad_sample: skip

    def add_image(i: int, image: dict) -> None:
        where = f"{path}: images[{i}]"
        image_id = _field(image, "id", int, where)
        if image_id in records:
            bad_ids.add(image_id)  # neither entry can own the annotations
            raise TfpipeError(f"{where}: image id {image_id} is used twice", "image ids must be unique")
        file_name = folder + _field(image, "file_name", str, where)
        safe_path(image_root, file_name, where)
        records[image_id] = ImageRecord(file_name, _field(image, "width", int, where),
                                        _field(image, "height", int, where))

    for i, image in enumerate(data["images"]):
        bad.guard(add_image, i, image)
    boxes: dict[int, list] = {k: [] for k in records}

    def add_annotation(i: int, ann: dict) -> None:
        where = f"{path}: annotations[{i}]"
        image_id = _field(ann, "image_id", int, where)
        if image_id not in records:
            raise TfpipeError(f"{where}: image_id {image_id} names no image", "annotations must refer to images[].id")
        try:
            category = _field(ann, "category_id", int, where)
            if category not in ids:
                raise TfpipeError(f"{where}: category_id {category} is not in the category list",
                                  f"use one of {sorted(ids)}")
            bbox = _field(ann, "bbox", list, where)
            if len(bbox) != 4 or not all(isinstance(v, int | float) for v in bbox):
                raise TfpipeError(f"{where}: bbox {bbox!r} is not [x, y, width, height]", "four numbers")
        except TfpipeError:
            bad_ids.add(image_id)  # an image missing one of its objects would teach the model wrong
            raise
        x, y, w, h = (float(v) for v in bbox)
        boxes[image_id].append(([x, y, x + w, y + h], ids[category], bool(ann.get("iscrowd", 0)), where,
                                ann.get("segmentation")))

    for i, ann in enumerate(data["annotations"]):
        bad.guard(add_annotation, i, ann)

    def finish(image_id: int, record: ImageRecord) -> ImageRecord:
        found = boxes[image_id]
        record.boxes = np.array([b for b, *_ in found], np.float32).reshape(-1, 4)
        record.classes = np.array([c for _, c, *_ in found], np.int32)
        record.iscrowd = np.array([z for _, _, z, *_ in found], bool)
        record.origins = [o for _, _, _, o, _ in found]
        if any(s for *_, s in found):
            record.segmentations = [s for *_, s in found]
        record.difficult = np.zeros(len(found), bool)
        check_boxes(record.boxes, record.width, record.height, f"{path}: image id {image_id} ({record.image})")
        return record

    out = []
    for image_id, record in records.items():
        finished = None if image_id in bad_ids else bad.guard(finish, image_id, record)
        if finished is not None:
            out.append(finished)
    return names, out


def read(root: Path, splits: dict[str, str] | None = None, on_bad_sample: str = "error") -> Dataset:
    """A folder with annotations/<split>.json (the layout `write` makes; also instances_<split>.json as
    COCO and CVAT name them), a single annotations.json (labelme), the files named in `splits`, or
    one annotations file itself (image file names relative to its folder, or to the folder above
    annotations/)."""
    root = Path(root)
    if splits is None and root.is_file():  # the annotations file itself: its images are beside it
        folder = root.parent.parent if root.parent.name == "annotations" else root.parent
        split = root.stem.removeprefix("instances_") if root.parent.name == "annotations" else "all"
        root, splits = folder, {split: str(root.relative_to(folder))}
    if splits is None:
        found = sorted((root / "annotations").glob("*.json")) or sorted(root.glob("annotations.json"))
        if not found:
            raise TfpipeError(f"{root}: no annotations/*.json or annotations.json", "expected a COCO dataset folder")
        splits = {p.stem.removeprefix("instances_") if p.parent.name == "annotations" else "all":
                  str(p.relative_to(root)) for p in found}
    names, records, bad = None, {}, BadSamples(on_bad_sample)
    for split, relative in splits.items():
        names, records[split] = read_split(root / relative, root, names, bad)
    return Dataset(names, records, root, bad.reasons)


def write(dataset: Dataset, dst: Path, copy_images=None) -> Path:
    """annotations/<split>.json under `dst`; category ids are 1..C (0 is reserved by COCO tools).
    Images stay where they are relative to the root: `copy_images(record, dst)` puts them there."""
    dst = Path(dst)
    categories = [{"id": k + 1, "name": name, "supercategory": "none"} for k, name in enumerate(dataset.class_names)]
    for split, records in dataset.splits.items():
        images, annotations = [], []
        for image_id, r in enumerate(records, start=1):
            images.append({"id": image_id, "file_name": r.image, "width": r.width, "height": r.height})
            segmentations = r.segmentations or [None] * len(r.classes)
            for (x1, y1, x2, y2), c, crowd, segmentation in zip(r.boxes.tolist(), r.classes.tolist(),
                                                                r.iscrowd.tolist(), segmentations, strict=True):
                annotation = {"id": len(annotations) + 1, "image_id": image_id, "category_id": c + 1,
                              "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                              "iscrowd": int(crowd)}
                if segmentation:
                    annotation["segmentation"] = segmentation
                annotations.append(annotation)
            if copy_images is not None:
                copy_images(r, dst)
        io.write_json(dst / "annotations" / f"{split}.json",
                      {"images": images, "annotations": annotations, "categories": categories})
    return dst


def instance_masks(record: ImageRecord) -> np.ndarray:
    """bool [N, H, W]: each box's instance mask from its polygons or RLE (through pycocotools);
    an object without a segmentation gets its box as mask."""
    from pycocotools import mask as mask_utils

    masks = np.zeros((len(record.classes), record.height, record.width), bool)
    segmentations = record.segmentations or [None] * len(record.classes)
    for i, (segmentation, box) in enumerate(zip(segmentations, record.boxes, strict=True)):
        if not segmentation:
            x1, y1, x2, y2 = np.round(box).astype(int)
            masks[i, y1:y2, x1:x2] = True
            continue
        if isinstance(segmentation, list):  # polygons: one RLE per polygon, merged
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, record.height, record.width))
        elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE (iscrowd annotations)
            rle = mask_utils.frPyObjects(segmentation, record.height, record.width)
        else:
            rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}
        masks[i] = mask_utils.decode(rle).astype(bool)
    return masks
