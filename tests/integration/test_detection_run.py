"""A detector end to end on FashionScenes: train, QAT, convert with the post-processing op and
raw, evaluate by COCO mAP; the op and tfpipe's own decoding agree box for box."""

import json
import shutil
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import kotlin_core_parity, needs_fashion_mnist, run_cli

pytestmark = [needs_fashion_mnist, pytest.mark.slow]
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "detection" / "ssdlite_mnv2.yaml"
TINY = ("data.train_limit=256", "data.test_limit=48", "train.epochs=2", "train.batch_size=32",
        "train.learning_rate=0.01", "convert.calibration_samples=16", "evaluate.latency_runs=5",
        "evaluate.latency_warmup=1", "evaluate.workers=1", "name=det")


def args(workdir, *extra):
    out = ["--config", str(CONFIG), "--workdir", str(workdir), *extra]
    for assignment in TINY:
        out += ["--set", assignment]
    return out


@pytest.fixture(scope="module")
def det_run(tmp_path_factory):
    from tfpipe.rundir import RunDir

    workdir = tmp_path_factory.mktemp("det")
    printed = StringIO()
    with redirect_stdout(printed):
        assert run_cli("tfpipe.convert.__main__", ["--quantize", "none", "--quantize", "int8", *args(workdir)]) == 0
        assert run_cli("tfpipe.evaluate.__main__", [*args(workdir), "--max-drop", "100"]) == 0
    return RunDir(workdir / "det"), printed.getvalue()


def test_every_model_is_scored_by_coco_map_and_fp32_matches_float(det_run):
    run, out = det_run
    report = json.loads((run.eval / "parity.json").read_text())
    assert report["task"] == "detection" and report["gate"]["metric"] == "map"
    assert report["dataset"]["samples"] == 48
    rows = {m["name"]: m for m in report["models"]}
    assert set(rows) == {"float", "fp32", "int8"} and all(m["status"] == "ok" for m in rows.values())
    for m in rows.values():
        assert {"map", "map50", "per_class_ap", "coco"} <= set(m["metrics"])
    # A two-epoch model scores most anchors near the 0.01 threshold and near each other, where float
    # round-off reorders ties and moves boxes across it: on 48 images that alone has moved mAP by up
    # to 0.6 point (CI). Box-level agreement is the stable check here; the trained run in
    # docs/zoo.md holds issue 7's 0.1 point (+0.00), and test_raw_outputs_... shows the decoding exact.
    assert rows["fp32"]["agreement_boxes"] >= 0.95 and abs(rows["fp32"]["delta_points"]["map"]) <= 1.0
    assert "mAP@.5" in (run.eval / "report.md").read_text() and (run.eval / "plots" / "ap.png").is_file()


def test_the_bundle_carries_the_anchors_and_the_op_outputs_and_the_edge_tpu_maps_everything_before_it(det_run):
    run, out = det_run
    bundle = json.loads(run.model_json.read_text())
    assert bundle["task"] == "detection" and len(bundle["detection"]["anchors"]) == 1364  # strides 8..128
    from tfpipe.config import load_config
    from tfpipe.models.registry import anchors

    # exactly the float32 anchors the post-processing op embeds (the evaluator decodes with these)
    cfg = load_config(CONFIG, list(TINY))
    assert np.array_equal(np.asarray(bundle["detection"]["anchors"], np.float32), anchors(cfg.model, 10))
    assert set(bundle["outputs"]) == {"detection_boxes", "detection_classes", "detection_scores", "num_detections"}
    assert "TFLite_Detection_PostProcess" in bundle["models"]["int8"]["ops"]
    compat = json.loads((run.export / "compat_edgetpu.json").read_text())
    assert compat["before_postprocess"]["share"] == 1.0
    assert compat["before_postprocess"]["cpu_tail"] == ["DEQUANTIZE", "DEQUANTIZE", "TFLite_Detection_PostProcess"]
    total = compat["before_postprocess"]["total"]
    assert f"before the post-processing op: {total}/{total} ops mapped (100%)" in out


def test_raw_outputs_decoded_by_tfpipe_give_the_ops_detections(det_run, tmp_path):
    """The same fp32 model exported raw and with the op: tfpipe.runtime.detection's decoding and
    class-wise NMS reproduce TFLite_Detection_PostProcess's boxes, classes and scores. The raw int8
    bundle's golden vectors then hold the Android core (Kotlin) to the same decoding and NMS."""
    from tfpipe import tasks
    from tfpipe.config import load_config
    from tfpipe.models.registry import anchors
    from tfpipe.rundir import RunDir
    from tfpipe.runtime import Worker
    from tfpipe.runtime.detection import detect, finished

    run, _ = det_run
    shutil.copytree(run.root, tmp_path / "det")
    assert run_cli("tfpipe.convert.__main__", ["--quantize", "none", "--quantize", "int8", *args(tmp_path),
                                               "--set", "convert.postprocess=raw"]) == 0
    raw_model = RunDir(tmp_path / "det").tflite("none")
    cfg = load_config(CONFIG, list(TINY))
    inputs = tasks.of(cfg).load_splits(cfg).evaluation_arrays(cfg.preprocess_spec())[0][:8]
    with Worker(raw_model, threads=1) as worker:
        raw = worker.predict({"images": inputs})
    with Worker(run.tflite("none"), threads=1) as worker:
        op = worker.predict({"images": inputs})
    grid = anchors(cfg.model, 10)
    d, size = cfg.detection, tuple(cfg.model.input_size)
    compared = 0
    for i in range(len(inputs)):
        boxes, classes, scores = detect(raw["box_encodings"][i], raw["class_scores"][i], grid, size,
                                        d.score_threshold, d.nms_iou, d.max_detections)
        op_boxes, op_classes, op_scores = finished({k: v[i] for k, v in op.items()}, size)
        assert len(boxes) == len(op_boxes)
        np.testing.assert_allclose(scores, op_scores, atol=1e-5)
        np.testing.assert_array_equal(classes, op_classes)
        np.testing.assert_allclose(boxes, op_boxes, atol=1e-3)
        compared += len(boxes)
    assert compared > 0

    golden = tmp_path / "golden_detection.json"
    assert run_cli("tfpipe.golden.__main__", ["--run", str(tmp_path / "det"), "--count", "6",
                                              "--out", str(golden)]) == 0
    samples = json.loads(golden.read_text())["samples"]
    assert {sample["outputs"]["box_encodings"]["dtype"] for sample in samples} <= {"int8", "uint8"}
    found = sum(len(sample["expected"]["classes"]) for sample in samples)
    assert found > 0
    raw_bundle = RunDir(tmp_path / "det").model_json
    printed = kotlin_core_parity(golden, bundles=(raw_bundle, run.model_json))
    assert f"golden parity: golden_detection.json: detection, 6 samples, {found} detections identical" in printed
    assert f"bundle: {raw_bundle}: detection, models fp32, int8, runs int8" in printed
    assert f"bundle: {run.model_json}: detection, models fp32, int8, runs int8" in printed


def test_the_keras_model_is_decoded_as_model_json_says(det_run, tmp_path):
    """The evaluator decodes the float model's raw outputs by model.json's settings (the device's
    path), not the config's: a bundle whose score threshold no score passes leaves the float model
    no detections, while the .tflite's post-processing op keeps its own."""
    run, _ = det_run
    shutil.copytree(run.root, tmp_path / "det")
    path = tmp_path / "det" / "export" / "model.json"
    bundle = json.loads(path.read_text())
    bundle["detection"]["score_threshold"] = 1.0
    path.write_text(json.dumps(bundle))
    assert run_cli("tfpipe.evaluate.__main__", [*args(tmp_path), "--max-drop", "100", "--models",
                                                str(tmp_path / "det" / "export" / "model_fp32.tflite")]) == 0
    before = {m["name"]: m for m in json.loads((run.eval / "parity.json").read_text())["models"]}
    after = {m["name"]: m for m in json.loads((tmp_path / "det" / "eval" / "parity.json").read_text())["models"]}
    assert before["float"]["metrics"]["detections"] > 0 and after["float"]["metrics"]["detections"] == 0
    assert after["fp32"]["metrics"] == before["fp32"]["metrics"]


def test_the_zoo_table_has_a_detection_row_read_from_the_run(det_run, tmp_path):
    import importlib.util

    run, _ = det_run
    spec = importlib.util.spec_from_file_location("zoo_script", CONFIG.parents[2] / "scripts" / "zoo.py")
    zoo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zoo)
    for part in ("eval", "export"):  # the run as the config names it
        shutil.copytree(getattr(run, part), tmp_path / "runs" / "det_ssdlite_mnv2" / part)
    out = tmp_path / "zoo.md"
    assert zoo.main(["--workdir", str(tmp_path / "runs"), "table", "--out", str(out)]) == 0
    detection = out.read_text().split("# Object detection")[1]
    label = "| ssdlite_mnv2 first_stride=8 smallest=0.1 |"
    [row] = [line for line in detection.splitlines() if line.startswith(label)]
    cells = row.split(" | ")
    models = {m["name"]: m for m in json.loads((run.eval / "parity.json").read_text())["models"]}
    fp32, int8 = models["fp32"], models["int8"]
    assert cells[1] == "128x128"
    assert cells[5:13] == [f"{models['float']['metrics']['map']:.4f}", f"{models['float']['metrics']['map50']:.4f}",
                           f"{fp32['metrics']['map']:.4f}", f"{fp32['delta_points']['map']:+.2f}",
                           f"{int8['metrics']['map']:.4f}", f"{int8['metrics']['map50']:.4f}",
                           f"{int8['delta_points']['map']:+.2f}", f"{int8['agreement_boxes']:.4f}"]
    compat = json.loads((run.export / "compat_edgetpu.json").read_text())
    assert f"; 100% of the {compat['before_postprocess']['total']} ops before the post-processing op" in cells[-2]
