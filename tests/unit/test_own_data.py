"""A dataset of your own (data.format): what loading decides (splits, held-out val, class order) and
every kind of bad input, each a one-line error naming the file, or left out and listed with
data.on_bad_sample: skip. Tiny hand-made datasets; the runs themselves are in
tests/integration/test_own_data_runs.py."""

import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import QUICKSTART, REPO, needs_fashion_mnist, run_cli, write_image
from tfpipe.errors import TfpipeError

DETECTION = REPO / "configs" / "detection" / "yolov3_tiny.yaml"
SEGMENTATION = REPO / "configs" / "segmentation" / "unet_lite.yaml"


def yolo_dataset(root, train=6, val=2, names=("shirt", "bag"), mode="RGB"):
    """images/{train,val}/*.png (40x30) with one box each, class i % len(names)."""
    for split, count in (("train", train), ("val", val)):
        for i in range(count):
            write_image(root / "images" / split / f"{split}{i}.png", (40, 30), mode)
            label = root / "labels" / split / f"{split}{i}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(f"{i % len(names)} 0.5 0.5 0.4 0.4\n")
    (root / "data.yaml").write_text(json.dumps({"path": ".", "train": "images/train", "val": "images/val",
                                                "names": list(names)}))
    return root


def masks_dataset(root, count=4, values=(0, 1, 2, 255)):
    root.mkdir(parents=True)
    (root / "labels.txt").write_text("background\nshirt\nbag\n")
    for i in range(count):
        write_image(root / "images" / "train" / f"{i}.png", (20, 10))
        ids = np.resize(np.array(values, np.uint8), (10, 20))
        path = root / "masks" / "train" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ids).save(path)
    return root


def load(config, tmp_path, *sets):
    from tfpipe import tasks
    from tfpipe.config import load_config

    cfg = load_config(config, ["data.builtin=null", *sets])
    return tasks.of(cfg).load_splits(cfg)


def test_a_dataset_with_train_and_val_gives_both_and_val_is_the_test_split(tmp_path):
    splits = load(DETECTION, tmp_path, "data.format=yolo", f"data.train={yolo_dataset(tmp_path / 'y')}")
    assert (len(splits.train), len(splits.val), splits.test is splits.val, splits.test_name) == (6, 2, True, "val")
    assert splits.class_names == ("shirt", "bag") and splits.notes == ()


def test_without_a_val_split_a_seeded_fraction_is_held_out_and_said(tmp_path):
    root = yolo_dataset(tmp_path / "y", train=20, val=0)
    (root / "data.yaml").write_text(json.dumps({"train": "images/train", "names": ["shirt", "bag"]}))
    sets = ("data.format=yolo", f"data.train={root}", "data.val_fraction=0.25")
    first, again = load(DETECTION, tmp_path, *sets), load(DETECTION, tmp_path, *sets)
    assert (len(first.train), len(first.val)) == (15, 5)
    held = [r.image for r in first.val.dataset.splits["val"]]
    assert held == [r.image for r in again.val.dataset.splits["val"]]  # seeded
    assert not set(held) & {r.image for r in first.train.dataset.splits["train"]}
    assert first.notes == ("No val split given: 5 of data.train's images (25%, seed 0) are held out as val",)
    other = load(DETECTION, tmp_path, *sets, "data.val_seed=1")
    assert [r.image for r in other.val.dataset.splits["val"]] != held


def test_data_classes_fix_the_order_and_move_box_classes_and_class_map_ids(tmp_path):
    splits = load(DETECTION, tmp_path, "data.format=yolo", f"data.train={yolo_dataset(tmp_path / 'y')}",
                  "data.classes=[bag,shirt]")
    assert splits.class_names == ("bag", "shirt")
    records = splits.train.dataset.splits["train"]
    assert [int(r.classes[0]) for r in records] == [1, 0, 1, 0, 1, 0]  # shirt (0 in the files) is now 1
    seg = load(SEGMENTATION, tmp_path, "data.format=masks", f"data.train={masks_dataset(tmp_path / 'm')}",
               "data.classes=[bag,shirt]", "data.val_fraction=0.5")
    assert seg.class_names == ("background", "bag", "shirt")
    _, maps = seg.evaluation_arrays(_spec(SEGMENTATION))
    # the file's ids 0, 1 (shirt), 2 (bag), 255 become 0, 2, 1, 255 (letterbox border: 255)
    assert set(np.unique(maps).tolist()) == {0, 1, 2, 255}
    raw = np.resize(np.array((0, 1, 2, 255), np.uint8), (10, 20))
    assert np.array_equal(seg.test.mask_ids[raw], np.where(raw == 1, 2, np.where(raw == 2, 1, raw)))


def _spec(config):
    from tfpipe.config import load_config

    return load_config(config, ["model.input_size=[32,32]"]).preprocess_spec()


@pytest.mark.parametrize("break_it, message", [
    (lambda root: (root / "images" / "train" / "train1.png").write_bytes(b"broken"),
     r"images/train/train1.png: unreadable or corrupt image"),
    (lambda root: (root / "images" / "val" / "val0.png").unlink() or
     (root / "images" / "val" / "val1.png").unlink(), r"data.yaml: val: no images in .*images/val"),
    (lambda root: write_image(root / "images" / "train" / "train2.png", (40, 30), "L"),
     r"images/train/train2.png: a grayscale image in a dataset of mixed grayscale and colour images \(1 of 8"),
    (lambda root: write_image(root / "images" / "train" / "train3.png", (40, 30), "I;16"),
     r"images/train/train3.png: a I;16 image \(convert it to 8-bit RGB or grayscale"),
])
def test_bad_images_are_one_line_errors_or_left_out_and_listed(tmp_path, break_it, message):
    root = yolo_dataset(tmp_path / "y")
    break_it(root)
    sets = ("data.format=yolo", f"data.train={root}")
    with pytest.raises(TfpipeError, match=message):
        load(DETECTION, tmp_path, *sets)
    if "no images" in message:  # a split without images is the dataset's error, never skipped
        return
    splits = load(DETECTION, tmp_path, *sets, "data.on_bad_sample=skip")
    assert len(splits.skipped) == 1 and len(splits.train) + len(splits.val) == 7
    assert __import__("re").search(message, splits.skipped[0])


def test_an_annotation_naming_a_missing_image_is_named(tmp_path):
    from tests.conftest import write_coco

    root = tmp_path / "coco"
    write_image(root / "a.png")
    write_coco(root, ["a.png", "b.png"])
    sets = ("data.format=coco", f"data.train={root / 'annotations' / 'instances_val.json'}", "data.val_fraction=0.5")
    with pytest.raises(TfpipeError, match=r"coco/b.png: image not found \(the annotations name an image"):
        load(DETECTION, tmp_path, *sets)
    with pytest.raises(TfpipeError, match=r"data.train: 1 image, none to hold out as val"):
        load(DETECTION, tmp_path, *sets, "data.on_bad_sample=skip")


def test_a_class_outside_data_classes_is_named_with_its_object(tmp_path):
    root = yolo_dataset(tmp_path / "y")
    sets = ("data.format=yolo", f"data.train={root}", "data.classes=[shirt]")
    with pytest.raises(TfpipeError, match=r"labels/train/train1.txt:1: class 'bag' is not in "
                                          r"data.classes \(add it to data.classes \(shirt\)"):
        load(DETECTION, tmp_path, *sets)
    splits = load(DETECTION, tmp_path, *sets, "data.on_bad_sample=skip")
    assert (len(splits.train), len(splits.val), len(splits.skipped)) == (3, 1, 4)


def test_class_map_ids_outside_the_classes_are_named(tmp_path):
    root = masks_dataset(tmp_path / "m", values=(0, 1, 7))
    sets = ("data.format=masks", f"data.train={root}")
    with pytest.raises(TfpipeError, match=r"masks/train/0.png: class ids 7 are not in the 2 classes"):
        load(SEGMENTATION, tmp_path, *sets)
    # VOC's class maps are read by the training loader's check, not the VOC reader
    voc = tmp_path / "voc"
    for i in range(3):
        write_image(voc / "JPEGImages" / f"{i}.jpg", (20, 10))
        (voc / "SegmentationClass").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((10, 20), 30 if i == 1 else 1, np.uint8)).save(voc / "SegmentationClass" / f"{i}.png")
    (voc / "labels.txt").write_text("shirt\nbag\n")
    sets = ("data.format=voc", f"data.train={voc}", "data.val_fraction=0.4")
    with pytest.raises(TfpipeError, match=r"SegmentationClass/1.png: class id 30 is not one of the 2 classes"):
        load(SEGMENTATION, tmp_path, *sets)
    assert len(load(SEGMENTATION, tmp_path, *sets, "data.on_bad_sample=skip").skipped) == 1


@pytest.mark.parametrize("sets, message", [
    (("data.format=folders", "data.train={root}"),
     "data.format: folders gives labels, this task learns from boxes (use a dataset in coco, voc, yolo)"),
    ((), "data: fashion_mnist has no boxes to learn from (use fashion_scenes (data.builtin / data.dataset), or a "
         "dataset of your own (data.format))"),
    (("data.format=pascal", "data.train={root}"), "data.format: 'pascal' is not accepted (use one of: coco, voc"),
    (("data.format=yolo", "data.train={root}/nowhere"), "data.train: {root}/nowhere: not found"),
    (("data.format=yolo",), "data.format: yolo needs data.train"),
    (("data.train={root}",), "data.train is set but data.format is not"),
    (("data.format=yolo", "data.train={root}", "data.classes=[a,a]"), "data.classes: a listed twice"),
    (("data.format=yolo", "data.train={root}", "data.val={root}"),
     "data.val: {root} gives the same split as data.train"),
])
def test_config_mistakes_are_one_line_errors_exit_2_and_write_nothing(tmp_path, capsys, sets, message):
    root = yolo_dataset(tmp_path / "y", val=0)
    (root / "data.yaml").write_text(json.dumps({"train": "images/train", "names": ["shirt", "bag"]}))
    argv = ["--config", str(DETECTION), "--workdir", str(tmp_path / "runs"), "--set", "data.builtin=null"]
    for assignment in sets:
        argv += ["--set", assignment.format(root=root)]
    assert run_cli("tfpipe.train.__main__", argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message.format(root=root) in err
    assert not (tmp_path / "runs").exists()


def test_class_folders_give_labels_decoded_at_any_size(tmp_path):
    for split, name, count in (("train", "cat", 3), ("train", "dog", 3), ("val", "cat", 1), ("val", "dog", 1)):
        for i in range(count):
            write_image(tmp_path / "f" / split / name / f"{i}.jpg", (50 + 10 * i, 40))
    splits = load(QUICKSTART, tmp_path, "data.format=folders", f"data.train={tmp_path / 'f'}")
    spec = _spec(QUICKSTART)
    x, labels = splits.evaluation_arrays(spec)
    assert x.shape == (2, 32, 32, 1) and labels.tolist() == [0, 1]
    batch_x, batch_y = next(iter(splits.batches(splits.train, spec, 4, training=True)))
    assert batch_x.shape == (4, 32, 32, 1) and batch_y.shape == (4, 2)


@needs_fashion_mnist
def test_scenes_and_folders_commands_write_datasets_that_inspect_reads(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TFPIPE_CACHE", str(tmp_path / "cache"))
    small = [f"data.scenes.{k}={v}" for k, v in (("size", 64), ("train", 8), ("val", 4), ("max_scale", 2))]
    argv = ["scenes", "--to", "masks", str(tmp_path / "masks")]
    for assignment in small:
        argv += ["--set", assignment]
    assert run_cli("tfpipe.data.__main__", argv) == 0
    assert "Instances painted into class maps" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["images", "labels.txt", "masks"]
    inspect = ["inspect", "--config", str(SEGMENTATION), "--workdir", str(tmp_path / "runs"), "--set",
               "data.builtin=null", "--set", "data.format=masks", "--set", f"data.train={tmp_path / 'masks'}"]
    assert run_cli("tfpipe.data.__main__", inspect) == 0
    assert (tmp_path / "runs" / "seg_unet_lite" / "data" / "samples_val.png").is_file()
    assert "train: 8 images" in capsys.readouterr().out
    assert run_cli("tfpipe.data.__main__", ["folders", str(tmp_path / "f"), "--size", "32", "--train", "20",
                                            "--val", "10"]) == 0
    assert len(list((tmp_path / "f" / "train").rglob("*.png"))) == 20
    assert run_cli("tfpipe.data.__main__", ["folders", str(tmp_path / "f"), "--size", "32"]) == 2
    assert "f: exists and is not empty" in capsys.readouterr().err
    assert run_cli("tfpipe.data.__main__", ["folders", str(tmp_path / "g"), "--size", "16"]) == 2
    assert "--size: 16 is not accepted (use 32 or more)" in capsys.readouterr().err


def test_coco_polygons_paint_class_maps_in_the_models_class_order(tmp_path):
    """A map painted from COCO instances is in the model's classes (data.classes reorders them);
    only PNG maps go through the id table."""
    root = tmp_path / "coco"
    images = []
    for i in range(4):
        write_image(root / f"{i}.png", (20, 16))
        images.append({"id": i, "file_name": f"{i}.png", "width": 20, "height": 16})
    left, right = [[0, 0, 10, 0, 10, 16, 0, 16]], [[10, 0, 20, 0, 20, 16, 10, 16]]
    annotations = [{"id": 2 * i + k, "image_id": i, "category_id": k + 1, "bbox": [10 * k, 0, 10, 16],
                    "iscrowd": 0, "segmentation": polygon} for i in range(4) for k, polygon in enumerate((left, right))]
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                       "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    spec = load_config_spec(SEGMENTATION, (32, 40))  # twice the images' size: no letterbox border
    for classes, expected in (("[a,b]", (1, 2)), ("[b,a]", (2, 1))):
        splits = load(SEGMENTATION, tmp_path, "data.format=coco", f"data.train={root / 'annotations.json'}",
                      f"data.classes={classes}", "data.val_fraction=0.5")
        _, maps = splits.evaluation_arrays(spec)
        assert (maps[:, :, :20] == expected[0]).all() and (maps[:, :, 20:] == expected[1]).all()


def test_voc_segmentation_reads_the_segmentation_lists_not_mains(tmp_path):
    """Pascal VOC's ImageSets/Segmentation names other images than ImageSets/Main: segmentation
    takes its splits from Segmentation, detection from Main."""
    voc = tmp_path / "voc"
    for i in range(4):
        write_image(voc / "JPEGImages" / f"{i}.jpg", (20, 10))
        (voc / "Annotations").mkdir(parents=True, exist_ok=True)
        (voc / "Annotations" / f"{i}.xml").write_text(
            f"<annotation><filename>{i}.jpg</filename><size><width>20</width><height>10</height></size>"
            "<object><name>shirt</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>8</xmax><ymax>8</ymax></bndbox>"
            "</object></annotation>")
    for i in (2, 3):
        (voc / "SegmentationClass").mkdir(exist_ok=True)
        Image.fromarray(np.ones((10, 20), np.uint8)).save(voc / "SegmentationClass" / f"{i}.png")
    for folder, train, val in (("Main", "0\n1\n", "2\n3\n"), ("Segmentation", "2\n", "3\n")):
        (voc / "ImageSets" / folder).mkdir(parents=True)
        (voc / "ImageSets" / folder / "train.txt").write_text(train)
        (voc / "ImageSets" / folder / "val.txt").write_text(val)
    (voc / "labels.txt").write_text("shirt\n")
    seg = load(SEGMENTATION, tmp_path, "data.format=voc", f"data.train={voc}")
    assert [r.image for r in seg.train.dataset.splits["train"]] == ["JPEGImages/2.jpg"]
    det = load(DETECTION, tmp_path, "data.format=voc", f"data.train={voc}")
    assert [r.image for r in det.train.dataset.splits["train"]] == ["JPEGImages/0.jpg", "JPEGImages/1.jpg"]
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("0\n")  # an image without its class map
    with pytest.raises(TfpipeError, match=r"JPEGImages/0.jpg: no class map for its 1 objects"):
        load(SEGMENTATION, tmp_path, "data.format=voc", f"data.train={voc}")


def load_config_spec(config, size):
    from tfpipe.config import load_config

    return load_config(config, [f"model.input_size=[{size[0]},{size[1]}]"]).preprocess_spec()


def test_an_unlisted_class_is_named_where_its_annotation_is_written(tmp_path):
    """The YOLO label file and line, the VOC XML file and object, the COCO JSON entry."""
    from tfpipe.data.formats.convert import convert

    root = yolo_dataset(tmp_path / "y")
    for kind in ("voc", "coco"):
        convert("yolo", kind, root, tmp_path / kind)
    for kind, where in (("yolo", r"labels/train/train1.txt:1"), ("voc", r"voc/Annotations/train1.xml: object 0"),
                        ("coco", r"coco/annotations/train.json: annotations\[1\] \(id 2\)")):
        with pytest.raises(TfpipeError, match=where + r": class 'bag' is not in data.classes"):
            dataset = root if kind == "yolo" else tmp_path / kind
            load(DETECTION, tmp_path, f"data.format={kind}", f"data.train={dataset}", "data.classes=[shirt]")


def test_train_and_val_from_two_datasets_of_one_split_each(tmp_path):
    """data.val names another dataset: its only split is val, whatever it is called; classes are
    matched by name, so another order in the val dataset's data.yaml is no problem."""
    train = yolo_dataset(tmp_path / "t", train=6, val=0)
    (train / "data.yaml").write_text(json.dumps({"train": "images/train", "names": ["shirt", "bag"]}))
    val = yolo_dataset(tmp_path / "v", train=3, val=0, names=("bag", "shirt"))
    (val / "data.yaml").write_text(json.dumps({"train": "images/train", "names": ["bag", "shirt"]}))
    splits = load(DETECTION, tmp_path, "data.format=yolo", f"data.train={train}", f"data.val={val}")
    assert (len(splits.train), len(splits.val), splits.notes) == (6, 3, ())
    assert [int(r.classes[0]) for r in splits.val.dataset.splits["val"]] == [1, 0, 1]  # bag, shirt, bag by name
    same = yolo_dataset(tmp_path / "s", train=3, val=0)  # same names and file names as train's
    (same / "data.yaml").write_text(json.dumps({"train": "images/train", "names": ["shirt", "bag"]}))
    assert len(load(DETECTION, tmp_path, "data.format=yolo", f"data.train={train}", f"data.val={same}").val) == 3
