"""COCO detection JSON: {"images", "annotations", "categories"}; bbox is [x, y, width, height].

Category ids (any integers, in any order) become contiguous ids 0..C-1 in the order of the
ids, names kept; labelme's pseudo-categories `_background_` and `__ignore__` are not object
classes and are left out. `iscrowd` is kept for evaluation. Instance segmentations (polygons or
RLE) and keypoints (`keypoints` [x, y, v] * K per annotation, the names in the categories'
`keypoints`) are read and checked against their image: a polygon of fewer than 3 points, an RLE of
another size and a labelled keypoint outside the image are errors naming the annotation's id.
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
    keypoint_names = _keypoint_names(path, categories)
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
        where = f"{path}: annotations[{i}] (id {ann.get('id')})"
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
            image = records[image_id]
            segmentation = _segmentation(ann.get("segmentation"), image.width, image.height, where)
            points = _keypoints(ann.get("keypoints"), keypoint_names, image.width, image.height, where)
        except TfpipeError:
            bad_ids.add(image_id)  # an image missing one of its objects would teach the model wrong
            raise
        x, y, w, h = (float(v) for v in bbox)
        boxes[image_id].append(([x, y, x + w, y + h], ids[category], bool(ann.get("iscrowd", 0)), where,
                                segmentation, points))

    for i, ann in enumerate(data["annotations"]):
        bad.guard(add_annotation, i, ann)

    def finish(image_id: int, record: ImageRecord) -> ImageRecord:
        found = boxes[image_id]
        record.boxes = np.array([b for b, *_ in found], np.float32).reshape(-1, 4)
        record.classes = np.array([c for _, c, *_ in found], np.int32)
        record.iscrowd = np.array([z for _, _, z, *_ in found], bool)
        record.origins = [o for _, _, _, o, *_ in found]
        if any(s for *_, s, _ in found):
            record.segmentations = [s for *_, s, _ in found]
        if keypoint_names:
            record.keypoints = np.array([p for *_, p in found], np.float32).reshape(-1, len(keypoint_names), 3)
        record.difficult = np.zeros(len(found), bool)
        check_boxes(record.boxes, record.width, record.height, f"{path}: image id {image_id} ({record.image})")
        return record

    out = []
    for image_id, record in records.items():
        finished = None if image_id in bad_ids else bad.guard(finish, image_id, record)
        if finished is not None:
            out.append(finished)
    return names, out, keypoint_names


def _keypoint_names(path: Path, categories: list[dict]) -> tuple[str, ...]:
    """The categories' keypoint names: one list shared by every category that names any."""
    lists = {tuple(str(n) for n in c["keypoints"]) for c in categories
             if isinstance(c.get("keypoints"), list) and c["keypoints"]}
    if len(lists) > 1:
        raise TfpipeError(f"{path}: categories name different keypoints ({' vs '.join(map(str, sorted(lists)))})",
                          "tfpipe learns one set of keypoints shared by every class")
    return next(iter(lists), ())


def _segmentation(segmentation, width: int, height: int, where: str):
    """The annotation's polygons or RLE, checked against its image (None when it has none)."""
    if not segmentation:
        return None
    if isinstance(segmentation, list):
        for k, polygon in enumerate(segmentation):
            if (not isinstance(polygon, list) or len(polygon) % 2 or len(polygon) < 6
                    or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in polygon)):
                count = len(polygon) // 2 if isinstance(polygon, list) else 0
                raise TfpipeError(f"{where}: segmentation polygon {k} has {count} point(s)",
                                  "a polygon is [x1, y1, x2, y2, ...] with at least 3 points")
        return segmentation
    if isinstance(segmentation, dict) and "counts" in segmentation:
        size = segmentation.get("size")
        if size != [height, width]:
            raise TfpipeError(f"{where}: segmentation RLE size {size} is not the image's [{height}, {width}]",
                              "an RLE's size is [height, width] of its image")
        return segmentation
    raise TfpipeError(f"{where}: segmentation is neither polygons nor RLE", "use [[x1, y1, ...]] or "
                                                                            "{size, counts}")


def _keypoints(values, names: tuple[str, ...], width: int, height: int, where: str, tolerance: float = 0.5):
    """float32 [K, 3] of the annotation's keypoints (zeros when it has none: not labelled)."""
    out = np.zeros((len(names), 3), np.float32)
    if not names or values is None or (isinstance(values, list) and not values):
        return out
    if (not isinstance(values, list) or len(values) != 3 * len(names)
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)):
        raise TfpipeError(f"{where}: keypoints is not {len(names)} x [x, y, v]",
                          f"the categories name {len(names)} keypoints ({', '.join(names)})")
    out[:] = np.asarray(values, np.float32).reshape(-1, 3)
    for k, (x, y, v) in enumerate(out):
        if v not in (0, 1, 2):
            raise TfpipeError(f"{where}: keypoint {names[k]} has visibility {v:g}",
                              "0 (not labelled), 1 (labelled, hidden) or 2 (visible)")
        if v and not (-tolerance <= x <= width + tolerance and -tolerance <= y <= height + tolerance):
            raise TfpipeError(f"{where}: keypoint {names[k]} ({x:g}, {y:g}) is outside the {width}x{height} image",
                              "labelled keypoints lie inside their image (v = 0 for one that is not labelled)")
    return out


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
    names, records, bad, keypoint_names = None, {}, BadSamples(on_bad_sample), None
    for split, relative in splits.items():
        names, records[split], points = read_split(root / relative, root, names, bad)
        if keypoint_names is not None and points != keypoint_names:
            raise TfpipeError(f"{root / relative}: keypoints {list(points)} differ from the other split's "
                              f"{list(keypoint_names)}", "every split must name the same keypoints")
        keypoint_names = points
    return Dataset(names, records, root, bad.reasons, keypoint_names or ())


def write(dataset: Dataset, dst: Path, copy_images=None) -> Path:
    """annotations/<split>.json under `dst`; category ids are 1..C (0 is reserved by COCO tools).
    Images stay where they are relative to the root: `copy_images(record, dst)` puts them there."""
    dst = Path(dst)
    categories = [{"id": k + 1, "name": name, "supercategory": "none"} for k, name in enumerate(dataset.class_names)]
    if dataset.keypoint_names:
        categories = [{**c, "keypoints": list(dataset.keypoint_names), "skeleton": []} for c in categories]
    for split, records in dataset.splits.items():
        images, annotations = [], []
        for image_id, r in enumerate(records, start=1):
            images.append({"id": image_id, "file_name": r.image, "width": r.width, "height": r.height})
            segmentations = r.segmentations or [None] * len(r.classes)
            points = r.keypoints if r.keypoints is not None else [None] * len(r.classes)
            for (x1, y1, x2, y2), c, crowd, segmentation, keypoints in zip(
                    r.boxes.tolist(), r.classes.tolist(), r.iscrowd.tolist(), segmentations, points, strict=True):
                annotation = {"id": len(annotations) + 1, "image_id": image_id, "category_id": c + 1,
                              "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                              "iscrowd": int(crowd)}
                if segmentation:
                    annotation["segmentation"] = segmentation
                if dataset.keypoint_names and keypoints is not None:
                    annotation["keypoints"] = [round(float(v), 3) for v in np.asarray(keypoints).reshape(-1)]
                    annotation["num_keypoints"] = int(np.count_nonzero(np.asarray(keypoints)[:, 2]))
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
