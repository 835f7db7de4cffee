"""COCO, VOC and YOLO readers and writers: round trips and the bad inputs each must name."""

import json
import shutil
from pathlib import Path

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
     "annotations[0] (id 1): image_id 8 names no image"),
    ({"annotations": [{"id": 1, "image_id": 7, "category_id": 5, "bbox": [1, 2, 5, 4]}]},
     "annotations[0] (id 1): category_id 5 is not in the category list"),
    ({"annotations": [{"id": 4, "image_id": 7, "category_id": 3, "bbox": [1, 2, 5, 4],
                       "segmentation": [[1, 2, 6, 2]]}]},
     "annotations[0] (id 4): segmentation polygon 0 has 2 point(s)"),
    ({"annotations": [{"id": 5, "image_id": 7, "category_id": 3, "bbox": [1, 2, 5, 4],
                       "segmentation": {"size": [20, 10], "counts": "abc"}}]},
     "annotations[0] (id 5): segmentation RLE size [20, 10] is not the image's [10, 20]"),
    ({"categories": [{"id": 3, "name": "boot", "keypoints": ["top", "bottom"]}],
      "annotations": [{"id": 6, "image_id": 7, "category_id": 3, "bbox": [1, 2, 5, 4],
                       "keypoints": [3, 3, 2, 25, 4, 2]}]},
     "annotations[0] (id 6): keypoint bottom (25, 4) is outside the 20x10 image"),
    ({"categories": [{"id": 3, "name": "boot", "keypoints": ["top", "bottom"]}],
      "annotations": [{"id": 6, "image_id": 7, "category_id": 3, "bbox": [1, 2, 5, 4], "keypoints": [3, 3, 2]}]},
     "annotations[0] (id 6): keypoints is not 2 x [x, y, v]"),
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


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "formats"


def tool_export(tmp_path, name, images: dict[str, tuple[int, int]]):
    """A copy of a fixture folder with solid JPEGs of the given (width, height) added."""
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root)
    for relative, size in images.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (128, 128, 128)).save(root / relative)
    return root


def test_labelme_coco_export(tmp_path):
    from tfpipe.data.formats.coco import instance_masks

    root = tool_export(tmp_path, "labelme_coco", {"JPEGImages/2011_000003.jpg": (160, 120),
                                                   "JPEGImages/2011_000006.jpg": (80, 100)})
    dataset = coco.read(root)
    assert dataset.class_names == ("person", "bottle") and list(dataset.splits) == ["all"]
    first, second = dataset.splits["all"]
    assert first.image == "JPEGImages/2011_000003.jpg" and (first.width, first.height) == (160, 120)
    assert first.classes.tolist() == [0, 1] and second.classes.tolist() == [1]
    assert first.boxes.tolist() == [[10, 20, 60, 90], [100, 10, 150, 60]]
    masks = instance_masks(first)
    # polygons rasterised by pycocotools: the rectangle's area, the triangle's half of its box
    assert abs(masks[0].sum() - 50 * 70) <= 2 * (50 + 70) and abs(masks[1].sum() - 1250) <= 2 * 100
    converted = convert("coco", "voc", root, tmp_path / "voc")
    assert converted.splits["all"][0].image == "JPEGImages/2011_000003.jpg"


def test_labelme_voc_export_without_imagesets(tmp_path):
    root = tool_export(tmp_path, "labelme_voc", {"JPEGImages/2011_000003.jpg": (160, 120)})
    dataset = voc.read(root)
    assert dataset.class_names == ("person", "bottle") and list(dataset.splits) == ["all"]
    (record,) = dataset.splits["all"]
    assert record.boxes.tolist() == [[9, 19, 60, 90], [99, 9, 150, 60]] and record.classes.tolist() == [0, 1]
    assert record.difficult.tolist() == [False, False]


def test_cvat_coco_export(tmp_path):
    root = tool_export(tmp_path, "cvat_coco", {"images/frame_000000.jpg": (200, 150),
                                                "images/frame_000001.jpg": (200, 150)})
    dataset = coco.read(root)
    assert dataset.class_names == ("car", "pedestrian") and list(dataset.splits) == ["default"]
    first, second = dataset.splits["default"]
    assert first.image == "images/frame_000000.jpg" and first.segmentations is None
    np.testing.assert_allclose(first.boxes, [[20.5, 30.25, 80.5, 70.25], [150, 50, 170, 80]])
    assert second.classes.tolist() == [0]
    yolo_root = tmp_path / "yolo"
    convert("coco", "yolo", root, yolo_root)
    assert (yolo_root / "labels" / "default" / "frame_000000.txt").read_text().splitlines()[0] == \
        "0 0.252500 0.335000 0.300000 0.266667"  # centre (50.5, 50.25) of 200x150


def test_roboflow_yolo_export(tmp_path):
    root = tool_export(tmp_path, "roboflow_yolo", {"train/images/img_001_jpg.rf.3f2a.jpg": (100, 50),
                                                    "valid/images/img_009_jpg.rf.9c1d.jpg": (64, 64)})
    dataset = yolo.read(root / "data.yaml")
    assert dataset.class_names == ("helmet", "vest") and list(dataset.splits) == ["train", "val"]  # no test/
    (train,) = dataset.splits["train"]
    assert train.image == "train/images/img_001_jpg.rf.3f2a.jpg"
    np.testing.assert_allclose(train.boxes, [[15, 15, 35, 35], [55, 17.5, 85, 42.5]], atol=1e-5)
    (val,) = dataset.splits["val"]
    assert val.boxes.tolist() == [[0, 0, 64, 64]] and val.classes.tolist() == [1]


def mask_folder(tmp_path, mask_size=(20, 10), values=(0, 2, 255), palette=False):
    root = tmp_path / "masks_ds"
    (root / "images" / "train").mkdir(parents=True)
    (root / "masks" / "train").mkdir(parents=True)
    (root / "labels.txt").write_text("background\nshirt\nbag\n")
    Image.new("RGB", (20, 10)).save(root / "images" / "train" / "a.jpg")
    ids = np.resize(np.array(values, np.uint8), mask_size[::-1])
    mask = Image.fromarray(ids)
    if palette:  # as VOC stores them: the ids are palette indices
        mask = mask.convert("P")
        mask.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    mask.save(root / "masks" / "train" / "a.png")
    return root


@pytest.mark.parametrize("palette", [False, True])
def test_mask_folders_pair_images_and_masks(tmp_path, palette):
    from tfpipe.data.formats.folders import read_masks

    dataset = read_masks(mask_folder(tmp_path, palette=palette))
    (record,) = dataset.splits["train"]
    assert dataset.class_names == ("shirt", "bag")  # labels.txt's line 0 names id 0, the background
    assert record.image == "images/train/a.jpg" and record.mask == "masks/train/a.png"
    assert set(np.unique(np.asarray(Image.open(dataset.root / record.mask))).tolist()) == {0, 2, 255}


@pytest.mark.parametrize("kwargs, message", [
    ({"mask_size": (20, 11)}, "a.png: mask is 20x11 but its image is 20x10"),
    ({"values": (0, 3)}, "a.png: class ids 3 are not in the 2 classes"),
])
def test_bad_masks_are_named_or_skipped(tmp_path, kwargs, message):
    from tfpipe.data.formats.folders import read_masks

    root = mask_folder(tmp_path, **kwargs)
    with pytest.raises(TfpipeError) as e:
        read_masks(root)
    assert message in str(e.value)
    skipped = read_masks(root, on_bad_sample="skip")
    assert skipped.splits["train"] == [] and len(skipped.skipped) == 1 and message in skipped.skipped[0]
    (root / "masks" / "train" / "a.png").unlink()
    with pytest.raises(TfpipeError, match="a.jpg: no mask .*masks/train/a.png"):
        read_masks(root)


def test_class_folders(tmp_path):
    from tfpipe.data.formats.folders import read_classes

    for split, name, count in (("train", "cat", 2), ("train", "dog", 1), ("val", "dog", 1)):
        (tmp_path / split / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.new("RGB", (8, 6)).save(tmp_path / split / name / f"{i}.png")
    dataset = read_classes(tmp_path)
    assert dataset.class_names == ("cat", "dog")
    assert [r.label for r in dataset.splits["train"]] == [0, 0, 1]
    assert [(r.image, r.label) for r in dataset.splits["val"]] == [("val/dog/0.png", 1)]
    (tmp_path / "train" / "cat" / "0.png").write_bytes(b"broken")
    with pytest.raises(TfpipeError, match="cat/0.png: unreadable or corrupt image"):
        read_classes(tmp_path)
    assert len(read_classes(tmp_path, on_bad_sample="skip").splits["train"]) == 2


def test_skip_leaves_out_bad_samples_and_says_why(tmp_path, capsys):
    from tests.conftest import run_cli

    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    images = [{"id": i, "file_name": f"{i}.png", "width": 20, "height": 10} for i in range(4)]
    for image in images:
        Image.new("RGB", (20, 10)).save(root / "images" / image["file_name"])
    annotations = [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5]},
                   {"id": 2, "image_id": 1, "category_id": 9, "bbox": [1, 1, 5, 5]},  # unknown class
                   {"id": 3, "image_id": 2, "category_id": 1, "bbox": [15, 1, 9, 5]},  # outside
                   {"id": 4, "image_id": 7, "category_id": 1, "bbox": [1, 1, 5, 5]}]  # names no image
    (root / "annotations").mkdir()
    (root / "annotations" / "train.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "bag"}]}))
    assert run_cli("tfpipe.data.__main__", ["convert", "--from", "coco", "--to", "yolo", str(root),
                                            str(tmp_path / "out")]) == 2
    assert "annotations[1] (id 2): category_id 9 is not in the category list" in capsys.readouterr().err
    assert not (tmp_path / "out" / "data.yaml").exists()
    assert run_cli("tfpipe.data.__main__", ["convert", "--from", "coco", "--to", "yolo", "--on-bad-sample", "skip",
                                            str(root), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "images: train 2; 3 bad samples skipped" in out
    reasons = (tmp_path / "out" / "skipped_samples.txt").read_text().splitlines()
    assert len(reasons) == 3
    for expected in ("category_id 9 is not in the category list", "image_id 7 names no image", "is outside the 20x10"):
        assert sum(expected in reason for reason in reasons) == 1, expected
    kept = yolo.read(tmp_path / "out" / "data.yaml")
    assert [r.image for r in kept.splits["train"]] == ["images/train/0.png", "images/train/3.png"]


def test_convert_never_overwrites_and_never_leaves_half_a_dataset(tmp_path, capsys):
    from tests.conftest import run_cli

    root = tool_export(tmp_path, "labelme_voc", {"JPEGImages/2011_000003.jpg": (160, 120)})
    taken = tmp_path / "taken"
    (taken / "annotations").mkdir(parents=True)
    (taken / "annotations" / "train.json").write_text("mine")
    assert run_cli("tfpipe.data.__main__", ["convert", "--from", "voc", "--to", "coco", str(root), str(taken)]) == 2
    assert "taken: exists and is not empty" in capsys.readouterr().err
    assert (taken / "annotations" / "train.json").read_text() == "mine"
    (root / "JPEGImages" / "2011_000003.jpg").unlink()  # fails while placing the images
    assert run_cli("tfpipe.data.__main__", ["convert", "--from", "voc", "--to", "coco", str(root),
                                            str(tmp_path / "new")]) == 2
    assert "image not found" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labelme_voc", "taken"]  # no new/, no staging folder
