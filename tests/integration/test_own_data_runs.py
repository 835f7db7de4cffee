"""A dataset of your own, end to end as a user runs it: FashionScenes exported with
`tfpipe.data convert` to COCO, VOC, YOLO and mask folders, and class folders written by
`tfpipe.data folders`, each trained, converted and scored by `tfpipe.run` through data.format; the
parity report is computed on the user's val split, every image of it. Bad samples left out with
data.on_bad_sample: skip are listed by the run."""

import json
import os

import pytest

from tests.conftest import REPO, needs_fashion_mnist, run_cli

pytestmark = [needs_fashion_mnist, pytest.mark.slow]
DETECTION = REPO / "configs" / "detection" / "yolov3_tiny.yaml"
SEGMENTATION = REPO / "configs" / "segmentation" / "unet_lite.yaml"
CLASSIFICATION = REPO / "configs" / "quickstart.yaml"
FAST = ("train.epochs=1", "train.batch_size=8", "convert.calibration_samples=8", "evaluate.latency_runs=3",
        "evaluate.latency_warmup=1", "evaluate.workers=1", "evaluate.max_drop=100", "convert.quantize=[none]")
SCENES = ("size=64", "train=48", "val=12", "max_scale=2")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The tiny scenes in every layout tfpipe reads, made by the user-facing commands."""
    from tfpipe.config import SceneSpec
    from tfpipe.data import fashion_scenes

    root = tmp_path_factory.mktemp("own")
    spec = SceneSpec(size=64, train=48, val=12, max_scale=2.0)
    scenes = fashion_scenes.ensure(root / "cache", spec)
    for kind in ("coco", "voc", "yolo", "masks"):
        assert run_cli("tfpipe.data.__main__", ["convert", "--from", "coco", "--to", kind, str(scenes),
                                                str(root / kind)]) == 0
    assert run_cli("tfpipe.data.__main__", ["folders", str(root / "folders"), "--size", "40", "--train", "64",
                                            "--val", "16"]) == 0
    return root


def run(exports, config, name, *sets):
    argv = ["--config", str(config), "--workdir", str(exports / "runs"), "--set", f"name={name}",
            "--set", "data.builtin=null"]
    for assignment in (*FAST, *sets):
        argv += ["--set", assignment]
    assert run_cli("tfpipe.run", argv) == 0
    return json.loads((exports / "runs" / name / "eval" / "parity.json").read_text())


@pytest.mark.parametrize("config, kind, extra", [
    (DETECTION, "coco", ()), (DETECTION, "voc", ()), (DETECTION, "yolo", ()),
    (SEGMENTATION, "coco", ()), (SEGMENTATION, "voc", ()), (SEGMENTATION, "masks", ()),
])
def test_each_format_trains_converts_and_is_scored_on_its_whole_val_split(exports, config, kind, extra):
    task = "det" if config == DETECTION else "seg"
    report = run(exports, config, f"{task}_{kind}", f"data.format={kind}", f"data.train={exports / kind}",
                 "model.input_size=[64,64]", *extra)
    assert report["dataset"]["split"] == "val" and report["dataset"]["samples"] == 12  # the export's val split
    assert report["dataset"]["name"] == kind
    assert report["gate"]["metric"] == ("map" if task == "det" else "miou")
    assert [m["name"] for m in report["models"]] == ["float", "fp32"]
    assert all(m["status"] == "ok" for m in report["models"])
    names = report["dataset"]["classes"]
    assert names[-1] == "Ankle boot" and (names[0] == "background") == (task == "seg")


def test_class_folders_train_quantize_to_int8_and_pass_the_gate(exports):
    report = run(exports, CLASSIFICATION, "cls_folders", "data.format=folders", f"data.train={exports / 'folders'}",
                 "model.channels=3", "convert.quantize=[none,int8]")
    assert report["dataset"]["samples"] == 16 and report["gate"]["metric"] == "top1" and report["gate"]["passed"]
    assert [m["name"] for m in report["models"]] == ["float", "fp32", "int8"]


def test_skipped_samples_are_left_out_and_listed_by_the_run(exports, capsys):
    """A COCO export with a corrupt image, an annotation naming a missing image and a grayscale
    image among colour ones: with on_bad_sample: skip the run completes without them and says so."""
    import shutil

    from PIL import Image

    root = exports / "coco_bad"
    shutil.copytree(exports / "coco", root, copy_function=shutil.copy)
    train = sorted((root / "images" / "train").iterdir())
    train[0].write_bytes(b"not a jpeg")
    with Image.open(train[1]) as image:
        image.convert("L").save(train[1], format="JPEG")
    os.unlink(train[2])
    report = run(exports, DETECTION, "det_skip", "data.format=coco", f"data.train={root}",
                 "model.input_size=[64,64]", "data.on_bad_sample=skip")
    assert report["dataset"]["samples"] == 12
    listing = (exports / "runs" / "det_skip" / "train" / "skipped_samples.txt").read_text().splitlines()
    assert [line.split(": ", 1)[0] for line in listing] == [str(train[0]), str(train[2]), str(train[1])]
    assert ["unreadable or corrupt image" in listing[0], "image not found" in listing[1],
            "mixed grayscale and colour images (1 of 58 are grayscale)" in listing[2]] == [True] * 3
    assert "3 bad samples left out (data.on_bad_sample: skip)" in capsys.readouterr().out


def test_a_users_own_keras_model_is_verified_on_the_users_labelled_folders(exports, tmp_path):
    """convert --model X.h5 calibrated by a config naming the user's class folders; evaluate then
    scores float, fp32 and int8 by top-1 on the folders' val split (labels, not only agreement)."""
    import numpy as np
    import yaml
    from PIL import Image

    from tfpipe.backend import keras

    folders = exports / "folders"
    names = sorted(p.name for p in (folders / "train").iterdir())
    images = [(np.asarray(Image.open(p), np.float32), k) for k, name in enumerate(names)
              for p in sorted((folders / "train" / name).iterdir())]
    x, y = np.stack([i for i, _ in images]) / 255.0, np.array([k for _, k in images])
    model = keras.Sequential([keras.layers.Input((40, 40, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(len(names))])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "mine.h5")
    config = tmp_path / "mine.yaml"
    config.write_text(yaml.safe_dump({
        "name": "mine", "task": "classification",
        "data": {"format": "folders", "train": str(folders)},
        "preprocess": {"scale": 1 / 255, "offset": 0.0},
        "convert": {"quantize": ["none", "int8"], "calibration_samples": 16},
        "evaluate": {"latency_runs": 3, "latency_warmup": 1, "max_drop": 100}}))
    workdir = tmp_path / "runs"
    assert run_cli("tfpipe.convert.__main__", ["--model", str(tmp_path / "mine.h5"), "--calibration-data", str(config),
                                               "--workdir", str(workdir)]) == 0
    assert run_cli("tfpipe.evaluate.__main__", ["--config", str(workdir / "mine" / "config.yaml"),
                                                "--workdir", str(workdir)]) == 0
    report = json.loads((workdir / "mine" / "eval" / "parity.json").read_text())
    assert report["dataset"]["samples"] == 16 and report["gate"]["metric"] == "top1"
    rows = {m["name"]: m for m in report["models"]}
    assert set(rows) == {"float", "fp32", "int8"} and all("top1" in m["metrics"] for m in rows.values())
    assert rows["fp32"]["metrics"]["top1"] == rows["float"]["metrics"]["top1"]
