"""Instance segmentation end to end, as a user runs it: `tfpipe.run` on the Mask R-CNN config
(tiny scenes, one epoch) trains, runs QAT, converts fp32 and int8 and scores every model by COCO
box, mask and keypoint AP; the Kotlin core and the Coral runner decode the int8 bundle as the
evaluator does. The trained figures are in docs/zoo.md (this run is far too short to learn)."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from tests.conftest import REPO, config_args, finished_run, kotlin_core_parity, run_cli

CONFIG = REPO / "configs" / "instance" / "mask_rcnn_resnet18.yaml"
SMALL = ("data.scenes.size=96", "data.scenes.train=32", "data.scenes.val=8", "data.scenes.max_scale=2",
         "model.input_size=[96,96]", "model.args.proposals=8", "train.epochs=1", "train.batch_size=8",
         "convert.calibration_samples=8", "evaluate.latency_runs=3", "evaluate.latency_warmup=1",
         "evaluate.gallery=2", "evaluate.max_drop=100", "evaluate.workers=1",
         # a one-epoch model's scores can all sit under the default 0.01 (CI once golden-wrote 0 instances)
         "detection.score_threshold=0.0001")
TFLITE_PYTHON = REPO / ".venv-tflite" / "bin" / "python"


def args(workdir, *extra: str) -> list[str]:
    return config_args(CONFIG, workdir, SMALL, *extra)


@pytest.fixture(scope="module")
def instance_run(tmp_path_factory):
    return finished_run(tmp_path_factory.mktemp("instance"), CONFIG, SMALL)


def test_every_model_is_scored_by_box_mask_and_keypoint_ap_on_every_val_scene(instance_run):
    _, run, report, _ = instance_run
    assert report["task"] == "instance_segmentation" and report["gate"]["metric"] == "mask_map"
    assert report["dataset"]["samples"] == 8
    rows = {m["name"]: m for m in report["models"]}
    assert set(rows) == {"float", "fp32", "int8"} and all(m["status"] == "ok" for m in rows.values())
    for row in rows.values():
        for key in ("map", "mask_map", "mask_map75", "keypoint_map"):
            assert 0.0 <= row["metrics"][key] <= 1.0, (row["name"], key)
    # fp32 TFLite decodes to what Keras does (the 0.1-point bound)
    for key in ("map", "mask_map", "keypoint_map"):
        assert abs(rows["fp32"]["delta_points"][key]) < 0.1
    assert rows["fp32"]["agreement_masks"] > 0.99
    bundle = json.loads(run.model_json.read_text())
    assert set(bundle["outputs"]) == {"box_encodings", "class_scores", "instance_masks", "keypoint_heatmaps"}
    assert bundle["instance"]["keypoints"] == ["top", "bottom", "left", "right", "centre"]
    int8 = bundle["models"]["int8"]
    assert int8["outputs"]["instance_masks"]["shape"] == [1, 8, 28, 28]
    assert int8["outputs"]["keypoint_heatmaps"]["shape"] == [1, 8, 28, 28, 5]
    # with float-kept layers (Faster R-CNN's policy) the converter dequantizes every output
    # (convert/tflite.py `_int8_keeping_float`): the masks' 28x28 head itself is int8
    assert int8["outputs"]["instance_masks"]["dtype"] == "float32"
    assert "TRANSPOSE_CONV" in int8["ops"] and "int8" in int8["activation_dtypes"]
    assert (run.eval / "plots" / "gallery_int8.png").stat().st_size > 10_000
    assert "| model | box AP | mask AP | mask AP75 | kp AP |" in (run.eval / "report.md").read_text()


def test_the_android_core_reproduces_the_instances_of_the_golden_vectors(instance_run, tmp_path, monkeypatch):
    """Golden parity: the Kotlin core's boxes, pasted masks and keypoints are Python's."""
    _, run, _, workdir = instance_run
    monkeypatch.setenv("TFPIPE_CACHE", str(workdir / "cache"))
    golden = tmp_path / "golden_instance.json"
    # the score threshold of 0.0001 (SMALL) keeps instances even in a one-epoch model: masks to compare
    assert run_cli("tfpipe.golden.__main__", ["--run", str(run.root), "--count", "4", "--out", str(golden)]) == 0
    samples = json.loads(golden.read_text())["samples"]
    # A one-epoch model's soft masks can sit under the bundle's 0.5 everywhere (CI once pasted 131
    # empty masks, which compare equal whatever the pasting does). The device reads mask_threshold
    # from the bundle, so a copy of the run whose threshold is the median of these soft masks gives
    # masks with pixels on both sides of it: every pasted pixel's decision is compared.
    soft = np.concatenate([s["outputs"]["instance_masks"]["data"] for s in samples])
    copy = tmp_path / "run"
    shutil.copytree(run.export, copy / "export")
    shutil.copy(run.root / "config.yaml", copy)
    bundle = json.loads((copy / "export" / "model.json").read_text())
    bundle["instance"]["mask_threshold"] = float(np.median(soft))
    (copy / "export" / "model.json").write_text(json.dumps(bundle))
    assert run_cli("tfpipe.golden.__main__", ["--run", str(copy), "--count", "4", "--out", str(golden)]) == 0
    samples = json.loads(golden.read_text())["samples"]
    count = sum(len(s["expected"]["boxes"]) for s in samples)
    masks = np.concatenate([s["expected"]["masks"]["data"] for s in samples])
    assert count > 0 and 0 < masks.mean() < 1, (count, masks.mean())
    printed = kotlin_core_parity(golden, bundles=(run.model_json,))
    assert f"bundle: {run.model_json}: instance_segmentation" in printed
    assert f"golden_instance.json: instance_segmentation, 4 samples, {count} instances" in printed


@pytest.mark.skipif(not TFLITE_PYTHON.exists(), reason="`make test` builds .venv-tflite")
def test_the_coral_runner_prints_instances_with_mask_areas_on_the_cpu_fallback(instance_run, tmp_path, monkeypatch):
    from PIL import Image

    from tfpipe import tasks
    from tfpipe.runtime import Worker
    from tfpipe.runtime.bundle import Bundle

    cfg, run, _, workdir = instance_run
    monkeypatch.setenv("TFPIPE_CACHE", str(workdir / "cache"))
    splits = tasks.of(cfg).load_splits(cfg)
    (_, pixels), = splits.test.originals(1, "val")
    image = tmp_path / "scene.png"  # lossless: both processes decode the same pixels
    Image.fromarray(pixels).save(image)
    done = subprocess.run([str(TFLITE_PYTHON), str(REPO / "export" / "coral" / "run.py"), "--bundle", str(run.export),
                           str(image), "--runs", "2", "--min-score", "0.01"], capture_output=True, text=True,
                          timeout=300, cwd="/", env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith("running on the CPU") and lines[-1].startswith("latency: median")
    # the same instances and masks as the evaluator's runtime worker gives on the same interpreter
    bundle = Bundle(run.export, "int8")
    with Worker(run.tflite("int8"), backend="tflite_runtime", python=str(TFLITE_PYTHON), threads=1) as worker:
        outputs = worker.predict({"images": bundle.input_of(pixels)})
    expected = bundle.decode(outputs, pixels.shape[:2], min_score=0.01)
    assert lines[1] == f"{image}: {len(expected.classes)} instance(s)"
    areas = [int(line.rsplit("mask ", 1)[1].split(" px")[0]) for line in lines if "mask " in line and " px" in line]
    assert areas == [int(m.sum()) for m in expected.masks]
    assert np.all(np.asarray(areas) >= 0)


def test_instance_configs_reject_what_cannot_work(tmp_path, capsys):
    cases = [
        ([*args(tmp_path), "--set", "model.args.keypoints=3"],
         "model.args.keypoints: 3, the dataset's objects have 5 (top, bottom, left, right, centre)"),
        ([*args(tmp_path), "--set", "augment.mosaic=true"],
         "augment.mosaic: True is not available for instance segmentation"),
        ([*args(tmp_path), "--set", "model.name=faster_rcnn_resnet18"],
         "model.name: faster_rcnn_resnet18 is a detection model, the config's task is instance_segmentation"),
    ]
    import os

    os.environ["TFPIPE_CACHE"] = str(tmp_path / "cache")
    try:
        for argv, message in cases:
            capsys.readouterr()
            assert run_cli("tfpipe.train.__main__", argv) == 2, message
            err = capsys.readouterr().err
            assert message in err, err
            assert not (tmp_path / "inst_mask_rcnn_resnet18").exists()
    finally:
        del os.environ["TFPIPE_CACHE"]
