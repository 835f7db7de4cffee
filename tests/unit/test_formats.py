"""COCO, VOC and YOLO readers and writers: round trips and the bad inputs each must name."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tfpipe.data.formats import Dataset, ImageRecord, coco, voc, yolo
from tfpipe.data.formats.convert import convert, place_images
from tfpipe.errors import TfpipeError

NAMES = ("shirt", "bag", "boot")


@st.composite
def records(draw, index: int):
    width, height = draw(st.integers(8, 64)), draw(st.integers(8, 64))
    n = draw(st.integers(0, 4))
    boxes, classes = [], []
    for _ in range(n):  # whole-pixel boxes, as VOC stores them
        x1, x2 = sorted(draw(st.lists(st.integers(0, width), min_size=2, max_size=2, unique=True)))
        y1, y2 = sorted(draw(st.lists(st.integers(0, height), min_size=2, max_size=2, unique=True)))
        boxes.append([x1, y1, x2, y2])
        classes.append(draw(st.integers(0, len(NAMES) - 1)))
    return ImageRecord(f"JPEGImages/img{index:03d}.png", width, height, np.array(boxes, np.float32).reshape(-1, 4),
                       np.array(classes, np.int32), np.zeros(n, bool), np.zeros(n, bool))


@st.composite
def datasets(draw):
    sizes = draw(st.tuples(st.integers(1, 4), st.integers(1, 3)))
    items = [draw(records(i)) for i in range(sum(sizes))]
    return {"train": items[: sizes[0]], "val": items[sizes[0] :]}


def write_voc(tmp_path, splits) -> Dataset:
    root = tmp_path / "voc"
    dataset = Dataset(NAMES, splits, root)
    for records_ in splits.values():
        for r in records_:
            (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (r.width, r.height), (90, 120, 150)).save(root / r.image)
    voc.write(dataset, root)
    return dataset


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(datasets())
def test_voc_to_coco_to_yolo_to_voc_keeps_classes_and_boxes(tmp_path_factory, splits):
    tmp_path = tmp_path_factory.mktemp("roundtrip")
    original = write_voc(tmp_path, splits)
    convert("voc", "coco", tmp_path / "voc", tmp_path / "coco")
    convert("coco", "yolo", tmp_path / "coco", tmp_path / "yolo")
    convert("yolo", "voc", tmp_path / "yolo", tmp_path / "voc2")
    final = voc.read(tmp_path / "voc2")
    assert final.class_names == NAMES and list(final.splits) == sorted(original.splits)
    for split, records_ in original.splits.items():
        back = {r.image: r for r in final.splits[split]}
        for r in records_:
            got = back[r.image]
            assert (got.width, got.height) == (r.width, r.height)
            assert got.classes.tolist() == r.classes.tolist()
            np.testing.assert_allclose(got.boxes, r.boxes, atol=0.5)


def test_voc_pixel_convention_and_difficult(tmp_path):
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\n")
    (root / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>10</width><height>8</height><depth>3</depth></size>"
        "<object><name>bag</name><difficult>1</difficult>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>8</ymax></bndbox></object></annotation>")
    dataset = voc.read(root, NAMES)
    (record,) = dataset.splits["train"]
    assert record.boxes.tolist() == [[0, 0, 10, 8]]  # the whole image: 1-based inclusive -> continuous
    assert record.classes.tolist() == [1] and record.difficult.tolist() == [True]


def coco_file(tmp_path, **changes):
    data = {"images": [{"id": 7, "file_name": "a.jpg", "width": 20, "height": 10}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 12, "bbox": [1, 2, 5, 4], "iscrowd": 1}],
            "categories": [{"id": 12, "name": "boot"}, {"id": 3, "name": "shirt"}]}
    data.update(changes)
    (tmp_path / "annotations").mkdir(exist_ok=True)
    path = tmp_path / "annotations" / "train.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_category_ids_become_contiguous_in_id_order(tmp_path):
    coco_file(tmp_path)
    dataset = coco.read(tmp_path)
    assert dataset.class_names == ("shirt", "boot")
    (record,) = dataset.splits["train"]
    assert record.classes.tolist() == [1] and record.boxes.tolist() == [[1, 2, 6, 6]]
    assert record.iscrowd.tolist() == [True]


@pytest.mark.parametrize("changes, message", [
    ({"annotations": [{"id": 1, "image_id": 8, "category_id": 12, "bbox": [1, 2, 5, 4]}]},
     "annotations[0]: image_id 8 names no image"),
    ({"annotations": [{"id": 1, "image_id": 7, "category_id": 5, "bbox": [1, 2, 5, 4]}]},
     "annotations[0]: category_id 5 is not in the category list"),
    ({"annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [18, 2, 5, 4]}]},
     "box 0 [18, 2, 23, 6] is outside the 20x10 image"),
    ({"annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 2, -1, 4]}]},
     "has x2 <= x1 or y2 <= y1"),
    ({"images": [{"id": 7, "file_name": "a.jpg", "width": 20, "height": 10}] * 2},
     "images[1]: image id 7 is used twice"),
    ({"images": [{"id": 7, "file_name": "../../etc/passwd", "width": 20, "height": 10}]}, "leaves the dataset root"),
    ({"images": [{"id": 7, "file_name": "/etc/passwd", "width": 20, "height": 10}]}, "leaves the dataset root"),
    ({"categories": "boot"}, "field 'categories' is missing or not a list"),
])
def test_coco_bad_input_is_named(tmp_path, changes, message):
    path = coco_file(tmp_path, **changes)
    with pytest.raises(TfpipeError) as e:
        coco.read(tmp_path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_invalid_json_and_xml_are_named(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "train.json").write_text('{"images": [')
    with pytest.raises(TfpipeError, match="train.json: not valid JSON"):
        coco.read(tmp_path)
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "val.txt").write_text("b\n")
    (root / "Annotations" / "b.xml").write_text("<annotation><filename>b.jpg</filename>")
    with pytest.raises(TfpipeError, match="b.xml: not valid XML"):
        voc.read(root, NAMES)
    (root / "ImageSets" / "Main" / "val.txt").write_text("\n")
    with pytest.raises(TfpipeError, match="val.txt: the split is empty"):
        voc.read(root, NAMES)


def yolo_dataset(tmp_path, label: str):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    Image.new("RGB", (40, 20)).save(tmp_path / "images" / "train" / "x.png")
    (tmp_path / "labels" / "train" / "x.txt").write_text(label)
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nnames: [shirt, bag, boot]\n")
    return tmp_path / "data.yaml"


def test_yolo_normalised_centres_become_pixel_boxes(tmp_path):
    dataset = yolo.read(yolo_dataset(tmp_path, "2 0.5 0.5 0.5 0.5\n\n"))
    (record,) = dataset.splits["train"]
    assert (record.width, record.height) == (40, 20)
    assert record.boxes.tolist() == [[10, 5, 30, 15]] and record.classes.tolist() == [2]


@pytest.mark.parametrize("label, message", [
    ("3 0.5 0.5 0.1 0.1", "x.txt:1: class id 3 is not in the category list"),
    ("0 0.5 0.5 0.1", "x.txt:1: '0 0.5 0.5 0.1' is not 'class cx cy w h'"),
    ("1 0.5 0.5 0.1 0.1\n0 0.9 0.5 0.4 0.2", "box 1 [28, 8, 44, 12] is outside the 40x20 image"),
])
def test_yolo_bad_lines_are_named(tmp_path, label, message):
    with pytest.raises(TfpipeError) as e:
        yolo.read(yolo_dataset(tmp_path, label))
    assert message in str(e.value)


def test_a_corrupt_image_is_named(tmp_path):
    path = yolo_dataset(tmp_path, "")
    (tmp_path / "images" / "train" / "x.png").write_bytes(b"not an image")
    with pytest.raises(TfpipeError, match="x.png: unreadable or corrupt image"):
        yolo.read(path)


def test_placing_images_refuses_two_images_with_one_name(tmp_path):
    root = tmp_path / "src"
    for folder in ("a", "b"):
        (root / folder).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(root / folder / "same.png")
    dataset = Dataset(NAMES, {"train": [ImageRecord("a/same.png", 4, 4), ImageRecord("b/same.png", 4, 4)]}, root)
    with pytest.raises(TfpipeError, match="b/same.png: its place in the voc layout, JPEGImages/same.png"):
        place_images(dataset, "voc", tmp_path / "dst")
