"""The quickstart detector (YOLOv3-tiny) end to end on FashionScenes: YOLO's loss trains through
the training view in float and in QAT, the saved models export only boxes and scores, the int8
model ends in the post-processing op, and the evaluator scores every model by COCO mAP."""

import json
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import pytest

from tests.conftest import needs_fashion_mnist, run_cli

pytestmark = [needs_fashion_mnist, pytest.mark.slow]
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "detection" / "yolov3_tiny.yaml"
TINY = ("data.train_limit=256", "data.test_limit=48", "train.epochs=2", "convert.calibration_samples=16",
        "evaluate.latency_runs=5", "evaluate.latency_warmup=1", "evaluate.workers=1", "evaluate.max_drop=100",
        "name=yolo")


@pytest.fixture(scope="module")
def yolo_run(tmp_path_factory):
    from tfpipe.rundir import RunDir

    workdir = tmp_path_factory.mktemp("yolo")
    argv = ["--config", str(CONFIG), "--workdir", str(workdir)]
    for assignment in TINY:
        argv += ["--set", assignment]
    printed = StringIO()
    with redirect_stdout(printed):
        assert run_cli("tfpipe.run", argv) == 0
    return RunDir(workdir / "yolo"), printed.getvalue()


def test_yolo_losses_train_in_float_and_in_qat(yolo_run):
    run, _ = yolo_run
    for history in (run.train / "history.csv", run.qat_model.parent / "history.csv"):
        header = {name.removeprefix("quant_") for name in history.read_text().splitlines()[0].split(",")}
        assert {"box_encodings_loss", "objectness_loss", "class_probabilities_loss"} <= header


def test_saved_models_export_boxes_and_scores_only_and_int8_ends_in_the_op(yolo_run):
    from tfpipe.models.registry import output_names
    from tfpipe.qat import load_qat_model
    from tfpipe.train.trainer import load_float_model

    run, _ = yolo_run
    assert load_float_model(run).output_names == ["box_encodings", "class_scores"]
    assert output_names(load_qat_model(run.qat_model)) == ["box_encodings", "class_scores"]
    bundle = json.loads(run.model_json.read_text())
    assert len(bundle["detection"]["anchors"]) == 8 * 8 * 3 + 4 * 4 * 3
    assert set(bundle["outputs"]) == {"detection_boxes", "detection_classes", "detection_scores", "num_detections"}
    assert "TFLite_Detection_PostProcess" in bundle["models"]["int8"]["ops"]


def test_every_model_is_scored_by_coco_map(yolo_run):
    run, printed = yolo_run
    report = json.loads((run.eval / "parity.json").read_text())
    assert report["task"] == "detection" and report["dataset"]["samples"] == 48
    rows = {m["name"]: m for m in report["models"]}
    assert set(rows) == {"float", "fp32", "int8"} and all(m["status"] == "ok" for m in rows.values())
    assert not [m["collapsed_outputs"] for m in rows.values() if "collapsed_outputs" in m]  # the collapse check passes
    # fp32 runs the float model's arithmetic: box for box the same detections (see test_detection_run)
    assert rows["fp32"]["agreement_boxes"] >= 0.95
    assert "Parity gate passed" in printed


def test_the_edge_tpu_build_maps_everything_before_the_post_processing_op(yolo_run, tmp_path, capsys):
    """`convert --target edgetpu`: YOLOv3-tiny's LeakyReLUs become frozen PReLUs, written as
    model_int8_tpu.tflite beside the CPU build, which the Edge TPU checker cuts at LEAKY_RELU."""
    import shutil

    from tfpipe.config import load_config

    run, _ = yolo_run
    copy = tmp_path / "yolo"
    shutil.copytree(run.root, copy, ignore=shutil.ignore_patterns("eval"))
    argv = ["--config", str(copy / "config.yaml"), "--workdir", str(tmp_path), "--target", "edgetpu"]
    assert run_cli("tfpipe.convert.__main__", argv) == 0
    printed = capsys.readouterr().out
    assert "Edge TPU build (11 rewrites of the same function; weights from the QAT model)" in printed
    assert "tiny0_leaky -> PReLU(alpha=0.1, frozen)" in printed
    bundle = json.loads((copy / "export" / "model.json").read_text())
    tpu = bundle["models"]["int8_tpu"]
    assert tpu["file"] == "model_int8_tpu.tflite" and tpu["io_dtype"] == "uint8" and len(tpu["edgetpu_rewrites"]) == 11
    assert "PRELU" in tpu["ops"] and "LEAKY_RELU" not in tpu["ops"]
    built = json.loads((copy / "export" / "compat_edgetpu_model_int8_tpu.json").read_text())
    assert built["before_postprocess"]["share"] == 1.0 and built["macs"]["share"] > 0.99
    cpu = json.loads((copy / "export" / "compat_edgetpu.json").read_text())
    assert cpu["first_unmapped"]["op"] == "LEAKY_RELU"

    cfg = load_config(copy / "config.yaml")
    assert cfg.name == "yolo"
    evaluate = ["--config", str(copy / "config.yaml"), "--workdir", str(tmp_path), "--models",
                str(copy / "export" / "model_int8.tflite"), str(copy / "export" / "model_int8_tpu.tflite")]
    assert run_cli("tfpipe.evaluate.__main__", evaluate) == 0
    rows = {m["name"]: m for m in json.loads((copy / "eval" / "parity.json").read_text())["models"]}
    assert rows["int8_tpu"]["status"] == "ok" and rows["int8"]["status"] == "ok"
