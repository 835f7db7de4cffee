"""Pascal VOC: Annotations/<id>.xml, ImageSets/Main/<split>.txt, JPEGImages/, SegmentationClass/<id>.png.

VOC's pixel coordinates are 1-based and inclusive (xmin=1 is the first pixel column; a box over
the whole image has xmax = width), so x1 = xmin - 1 and x2 = xmax in continuous coordinates.
The writer rounds to whole pixels, as the VOC devkit expects integers.
"""

from __future__ import annotations

import glob
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from tfpipe import io
from tfpipe.data.formats.records import (
    IMAGE_SUFFIXES,
    BadSamples,
    Dataset,
    ImageRecord,
    check_boxes,
    image_size,
    safe_path,
)
from tfpipe.errors import TfpipeError

# Pascal VOC 2012's classes: mask id k is VOC_CLASSES[k - 1] (0 background, 255 void)
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")


def _text(node, tag: str, where: str) -> str:
    found = node.find(tag)
    if found is None or found.text is None or not found.text.strip():
        raise TfpipeError(f"{where}: <{tag}> is missing or empty", "see the Pascal VOC annotation format")
    return found.text.strip()


def _number(node, tag: str, where: str) -> float:
    text = _text(node, tag, where)
    try:
        return float(text)
    except ValueError:
        raise TfpipeError(f"{where}: <{tag}> is {text!r}, not a number", "pixel coordinates are numbers") from None


def read_annotation(path: Path, names: dict[str, int], root: Path) -> ImageRecord:
    try:
        tree = ET.parse(path).getroot()
    except FileNotFoundError:
        raise TfpipeError(f"{path}: file not found", "the split lists an id without Annotations/<id>.xml") from None
    except ET.ParseError as e:
        raise TfpipeError(f"{path}: not valid XML ({e})", "expected a Pascal VOC annotation") from None
    where = str(path)
    size = tree.find("size")
    if size is None:
        raise TfpipeError(f"{where}: <size> is missing", "VOC annotations give <size><width><height>")
    width, height = int(_number(size, "width", where)), int(_number(size, "height", where))
    filename = _text(tree, "filename", where)
    image = f"JPEGImages/{filename}"
    safe_path(root, image, where)
    boxes, classes, difficult = [], [], []
    for i, obj in enumerate(tree.findall("object")):
        at = f"{where}: object {i}"
        name = _text(obj, "name", at)
        if name not in names:
            raise TfpipeError(f"{at}: class {name!r} is not in the category list", f"use one of {list(names)}")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise TfpipeError(f"{at}: <bndbox> is missing", "each object needs a box")
        xmin, ymin, xmax, ymax = (_number(bndbox, t, at) for t in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append([xmin - 1, ymin - 1, xmax, ymax])
        classes.append(names[name])
        flag = obj.find("difficult")
        difficult.append(flag is not None and (flag.text or "0").strip() == "1")
    record = ImageRecord(image, width, height, np.array(boxes, np.float32).reshape(-1, 4),
                         np.array(classes, np.int32), np.zeros(len(boxes), bool), np.array(difficult, bool),
                         origins=[f"{where}: object {i}" for i in range(len(boxes))])
    check_boxes(record.boxes, width, height, where)
    return record


def _mask_only(root: Path, image_id: str) -> ImageRecord:
    """A segmentation-only sample (SegmentationClass/<id>.png, no Annotations/<id>.xml): no boxes,
    the image's size from the image itself."""
    found = [p for p in sorted((root / "JPEGImages").glob(f"{glob.escape(image_id)}.*"))
             if p.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        raise TfpipeError(f"{root / 'JPEGImages'}: no image {image_id}.* for SegmentationClass/{image_id}.png",
                          "each mask needs its JPEGImages/<id>.jpg")
    width, height = image_size(found[0])
    empty = np.zeros(0, bool)
    return ImageRecord(f"JPEGImages/{found[0].name}", width, height, np.zeros((0, 4), np.float32),
                       np.zeros(0, np.int32), empty, empty)


def _split_ids(path: Path) -> list[str]:
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise TfpipeError(f"{path}: the split is empty", "list one image id per line")
    return ids


def _splits(root: Path, image_sets: str = "Main") -> dict[str, list[str]]:
    """Image ids per split: ImageSets/<image_sets>/<split>.txt (Main's per-class files like
    aeroplane_train.txt are skipped), else the other of Main and Segmentation, else every
    Annotations/*.xml (or, for a segmentation-only export, SegmentationClass/*.png) as one split
    'all' (labelme's labelme2voc writes no ImageSets). Pascal VOC's Segmentation lists are not
    Main's: segmentation reads them (image_sets='Segmentation')."""
    for folder in dict.fromkeys((image_sets, "Main", "Segmentation")):
        files = sorted(p for p in (root / "ImageSets" / folder).glob("*.txt") if "_" not in p.stem)
        if files:
            return {p.stem: _split_ids(p) for p in files}
    ids = sorted(p.stem for p in (root / "Annotations").glob("*.xml")) or sorted(
        p.stem for p in (root / "SegmentationClass").glob("*.png"))
    if not ids:
        raise TfpipeError(f"{root}: no ImageSets/Main/*.txt, Annotations/*.xml or SegmentationClass/*.png",
                          "expected a Pascal VOC folder")
    return {"all": ids}


def _listed_names(root: Path) -> tuple[str, ...] | None:
    """labels.txt (what `write` makes) or class_names.txt (labelme), without labelme's pseudo-classes."""
    from tfpipe.data.formats.coco import NOT_CLASSES

    for name in ("labels.txt", "class_names.txt"):
        if (root / name).is_file():
            return tuple(n.strip() for n in (root / name).read_text().splitlines()
                         if n.strip() and n.strip() not in NOT_CLASSES)
    return None


def read(root: Path, class_names: tuple[str, ...] | None = None, on_bad_sample: str = "error",
         image_sets: str = "Main") -> Dataset:
    """Class names: given, else labels.txt / class_names.txt in the root, else the sorted names
    found in the XML files. `image_sets`: which ImageSets lists name the splits (see `_splits`)."""
    root = Path(root)
    splits = _splits(root, image_sets)
    class_names = class_names or _listed_names(root)
    if class_names is None and not (root / "Annotations").is_dir():
        class_names = VOC_CLASSES  # a segmentation-only export of Pascal VOC: its mask ids 1..20
    if class_names is None:
        found = set()
        for ids in splits.values():
            for image_id in ids:
                path = safe_path(root, f"Annotations/{image_id}.xml", str(root))
                try:
                    tree = ET.parse(path).getroot()
                except (FileNotFoundError, ET.ParseError):
                    continue  # read_annotation names the problem below
                found |= {(o.findtext("name") or "").strip() for o in tree.findall("object")}
        class_names = tuple(sorted(found - {""}))
    names = {n: k for k, n in enumerate(class_names)}
    bad = BadSamples(on_bad_sample)

    def read_one(image_id: str) -> ImageRecord:
        xml = safe_path(root, f"Annotations/{image_id}.xml", str(root))
        mask = safe_path(root, f"SegmentationClass/{image_id}.png", str(root))
        mask_only = mask.is_file() and not xml.is_file()
        record = _mask_only(root, image_id) if mask_only else read_annotation(xml, names, root)
        record.mask = f"SegmentationClass/{image_id}.png" if mask.is_file() else None
        return record

    records = {split: [r for r in (bad.guard(read_one, i) for i in ids) if r is not None]
               for split, ids in splits.items()}
    return Dataset(tuple(class_names), records, root, bad.reasons)


def _annotation_xml(record: ImageRecord, class_names: tuple[str, ...]) -> bytes:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = Path(record.image).name
    size = ET.SubElement(root, "size")
    for tag, value in (("width", record.width), ("height", record.height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "1" if record.mask else "0"
    for (x1, y1, x2, y2), c, hard in zip(record.boxes.tolist(), record.classes.tolist(), record.difficult.tolist(),
                                         strict=True):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = class_names[c]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "1" if hard else "0"
        box = ET.SubElement(obj, "bndbox")
        # round half up, never past the image: a continuous box maps to whole 1-based pixels
        for tag, value in (("xmin", int(np.floor(x1 + 0.5)) + 1), ("ymin", int(np.floor(y1 + 0.5)) + 1),
                           ("xmax", min(int(np.floor(x2 + 0.5)), record.width)),
                           ("ymax", min(int(np.floor(y2 + 0.5)), record.height))):
            ET.SubElement(box, tag).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8")


def write(dataset: Dataset, dst: Path) -> Path:
    """Annotations, ImageSets/Main and labels.txt (class order) under `dst`, and
    ImageSets/Segmentation when the records have class maps. Images (and class maps) are expected at
    JPEGImages/<file name> (SegmentationClass/<stem>.png); the ids are the image file stems, which
    must therefore be unique."""
    dst = Path(dst)
    seen: dict[str, str] = {}
    for split, records in dataset.splits.items():
        ids = []
        for r in records:
            image_id = Path(r.image).stem
            if seen.setdefault(image_id, r.image) != r.image:
                raise TfpipeError(f"{r.image}: its VOC id {image_id!r} is also {seen[image_id]}'s",
                                  "VOC names annotations by image stem: rename one of the images")
            ids.append(image_id)
            io.write_bytes(dst / "Annotations" / f"{image_id}.xml", _annotation_xml(r, dataset.class_names))
        io.write_text(dst / "ImageSets" / "Main" / f"{split}.txt", "".join(f"{i}\n" for i in ids))
        segmented = [Path(r.image).stem for r in records if r.mask]
        if segmented:
            io.write_text(dst / "ImageSets" / "Segmentation" / f"{split}.txt", "".join(f"{i}\n" for i in segmented))
    io.write_text(dst / "labels.txt", "".join(f"{n}\n" for n in dataset.class_names))
    return dst
