"""Segmentation end to end, as a user runs it: `tfpipe.run` on a segmentation config (tiny scenes,
one epoch) trains U-Net-lite, runs QAT, converts fp32 and int8 with the in-graph class map, and
the evaluator scores every model by mIoU. The evaluator's figures are checked against an
independent computation from the .tflite files and the mask PNGs."""

import json

import numpy as np
import pytest

from tests.conftest import REPO, config_args, finished_run, kotlin_core_parity, run_cli

CONFIG = REPO / "configs" / "segmentation" / "unet_lite.yaml"
SMALL = ("data.scenes.size=64", "data.scenes.train=48", "data.scenes.val=12", "data.scenes.max_scale=2",
         "model.input_size=[64,64]", "train.epochs=1", "train.batch_size=8", "convert.calibration_samples=8",
         "evaluate.latency_runs=5", "evaluate.latency_warmup=1", "evaluate.gallery=3", "evaluate.max_drop=100")


def args(workdir, *extra: str) -> list[str]:
    return config_args(CONFIG, workdir, SMALL, *extra)


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory):
    return finished_run(tmp_path_factory.mktemp("seg"), CONFIG, SMALL)


def test_the_evaluator_scores_every_model_by_miou_on_every_val_scene(seg_run):
    _, run, report, _ = seg_run
    assert report["task"] == "segmentation" and report["gate"]["metric"] == "miou"
    assert report["dataset"] == {"name": "fashion_scenes", "split": "val", "samples": 12,
                                 "classes": report["dataset"]["classes"]}
    assert report["dataset"]["classes"][0] == "background" and len(report["dataset"]["classes"]) == 11
    rows = {m["name"]: m for m in report["models"]}
    assert set(rows) == {"float", "fp32", "int8"} and all(m["status"] == "ok" for m in rows.values())
    # fp32 TFLite computes what Keras computes: the 0.1-point bound, met with room to spare
    assert abs(rows["fp32"]["delta_points"]["miou"]) < 0.1 and rows["fp32"]["agreement_pixels"] > 0.999
    for name in ("fp32", "int8"):
        assert len(rows[name]["worst_disagreements"]) == 3
        assert (run.eval / "plots" / f"gallery_{name}.png").stat().st_size > 10_000
    assert (run.eval / "plots" / "iou.png").is_file()
    markdown = (run.eval / "report.md").read_text()
    assert "| model | mIoU | pixel acc | ΔmIoU pts |" in markdown and "## Per class" in markdown


def test_miou_matches_an_independent_computation_from_the_tflite_and_the_mask_pngs(seg_run):
    """Read the val masks with PIL, run model_int8.tflite with the interpreter directly, and count."""
    from ai_edge_litert.interpreter import Interpreter  # directly, not through tfpipe.runtime
    from PIL import Image

    from tfpipe import tasks

    cfg, run, report, workdir = seg_run
    import os

    os.environ["TFPIPE_CACHE"] = str(workdir / "cache")
    try:
        splits = tasks.of(cfg).load_splits(cfg)
    finally:
        del os.environ["TFPIPE_CACHE"]
    inputs, _ = splits.evaluation_arrays(cfg.preprocess_spec())
    records = splits.test.dataset.splits["val"]
    # the scenes are 64 px and so is the model: the masks are the labels pixel for pixel
    masks = np.stack([np.asarray(Image.open(splits.test.dataset.root / r.mask)) for r in records])
    runner = Interpreter(model_path=str(run.tflite("int8"))).get_signature_runner()
    (input_name,) = runner.get_input_details()
    detail = runner.get_input_details()[input_name]
    scale, zero = detail["quantization"]
    maps = []
    for x in inputs:
        # float64, ties to even: with scale 1/127.5 and zero point 128 every pixel lands on a tie
        # (q = pixel + 0.5), so float32 division would round differently from the documented rule
        info = np.iinfo(detail["dtype"])  # int8 (convert.io_dtype auto), uint8 for the Edge TPU
        q = np.clip(np.round(x.astype(np.float64) / scale) + zero, info.min, info.max).astype(detail["dtype"])[None]
        maps.append(runner(**{input_name: q})["class_map"][0])
    maps = np.stack(maps).astype(int)
    ious = []
    for k in range(11):
        truth, predicted = masks == k, maps == k
        union = (truth | predicted).sum()
        if union:
            ious.append((truth & predicted).sum() / union)
    int8 = next(m for m in report["models"] if m["name"] == "int8")
    assert int8["metrics"]["miou"] == pytest.approx(np.mean(ious), abs=1e-9)
    assert int8["metrics"]["pixel_accuracy"] == pytest.approx((maps == masks).mean(), abs=1e-9)


def test_the_bundle_describes_the_uint8_class_map_and_the_int8_model_is_integer_only(seg_run):
    _, run, _, _ = seg_run
    bundle = json.loads(run.model_json.read_text())
    assert bundle["task"] == "segmentation" and set(bundle["outputs"]) == {"probabilities", "class_map"}
    int8 = bundle["models"]["int8"]
    assert int8["outputs"]["class_map"]["dtype"] == "uint8" and int8["outputs"]["class_map"]["shape"] == [1, 64, 64]
    assert int8["outputs"]["probabilities"]["shape"] == [1, 64, 64, 11]
    assert "ARG_MAX" in int8["ops"] and "DEQUANTIZE" not in int8["ops"]
    assert set(int8["activation_dtypes"]) <= {"int8", "uint8", "int32"}


def test_the_android_core_reproduces_the_class_maps_of_the_golden_vectors(seg_run, tmp_path, monkeypatch):
    """Golden parity for segmentation: the Kotlin core's preprocessing gives the same input bytes
    and its mask, cut from the letterbox and scaled to each image, is Python's pixel for pixel."""
    _, run, _, workdir = seg_run
    monkeypatch.setenv("TFPIPE_CACHE", str(workdir / "cache"))
    golden = tmp_path / "golden_segmentation.json"
    argv = ["--run", str(run.root), "--count", "4", "--out", str(golden)]
    assert run_cli("tfpipe.golden.__main__", argv) == 0
    samples = json.loads(golden.read_text())["samples"]
    pixels = sum(int(np.prod(sample["expected"]["class_map"]["shape"])) for sample in samples)
    assert len({v for sample in samples for v in sample["expected"]["class_map"]["data"]}) > 1  # not all background
    printed = kotlin_core_parity(golden, bundles=(run.model_json,))
    assert f"bundle: {run.model_json}: segmentation" in printed
    assert f"golden_segmentation.json: segmentation, 4 samples, {pixels} mask pixels identical" in printed


def test_segmentation_configs_reject_what_cannot_work(tmp_path, capsys):
    from tests.conftest import QUICKSTART

    cases = [
        ([*args(tmp_path), "--set", "data.builtin=null"], "data: fashion_mnist has no masks to learn from"),
        ([*args(tmp_path), "--set", "train.class_weights=[1,2]"], "train.class_weights: 2 weights for 11 classes"),
        (["--config", str(QUICKSTART), "--workdir", str(tmp_path), "--set", "convert.class_map=true"],
         "convert.class_map: true needs task: segmentation"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert run_cli("tfpipe.train.__main__", argv) == 2, message
        assert message in capsys.readouterr().err


def test_the_zoo_table_has_a_segmentation_row_read_from_the_run(seg_run, tmp_path):
    import importlib.util
    import shutil

    _, run, report, _ = seg_run
    spec = importlib.util.spec_from_file_location("zoo_script", REPO / "scripts" / "zoo.py")
    zoo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zoo)
    shutil.copytree(run.eval, tmp_path / "runs" / "seg_unet_lite" / "eval")
    shutil.copytree(run.export, tmp_path / "runs" / "seg_unet_lite" / "export")
    out = tmp_path / "zoo.md"
    assert zoo.main(["--workdir", str(tmp_path / "runs"), "table", "--out", str(out)]) == 0
    segmentation = out.read_text().split("# Semantic segmentation")[1].split("# Object detection")[0]
    rows = [line for line in segmentation.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0][2:] for row in rows] == [
        "segnet_lite", "unet_lite", "deeplab_v3_plus_mnv2_os16 width=0.5", "pspnet backbone=resnet18 aux_loss=True",
        "fcn8s backbone=resnet18"]
    models = {m["name"]: m for m in report["models"]}
    cells = next(row for row in rows if row.startswith("| unet_lite |")).split(" | ")
    assert cells[1:3] == ["96x96", "1.95M"]  # the configured size, not the test's 64x64
    fp32, int8 = models["fp32"], models["int8"]
    assert cells[5:11] == [f"{models['float']['metrics']['miou']:.4f}", f"{fp32['metrics']['miou']:.4f}",
                           f"{fp32['delta_points']['miou']:+.2f}", f"{int8['metrics']['miou']:.4f}",
                           f"{int8['delta_points']['miou']:+.2f}", f"{int8['agreement_pixels']:.4f}"]
    # U-Net's sub-pixel upsampling (DEPTH_TO_SPACE) is not in the Edge TPU's op table
    assert cells[-2].endswith("; cut at DEPTH_TO_SPACE (up3_upconv)")
    assert cells[-1] == "? |" and sum("not run yet" in row for row in rows) == 4
    assert all(row.count("|") == rows[1].count("|") for row in rows)


def test_the_edge_tpu_build_maps_everything_before_the_class_maps_argmax(seg_run, tmp_path, capsys):
    """`convert --target edgetpu` on U-Net-lite: its sub-pixel upsampling's DEPTH_TO_SPACE becomes
    TRANSPOSE_CONV and the per-pixel softmax leaves the graph; the class map is the build's one
    output, and the evaluator scores it beside the CPU build."""
    import shutil

    _, run, _, _ = seg_run
    copy = tmp_path / run.root.name
    shutil.copytree(run.root, copy, ignore=shutil.ignore_patterns("eval"))
    config = ["--config", str(copy / "config.yaml"), "--workdir", str(tmp_path)]
    assert run_cli("tfpipe.convert.__main__", [*config, "--target", "edgetpu"]) == 0
    printed = capsys.readouterr().out
    assert "Edge TPU build (4 rewrites of the same function; weights from the QAT model)" in printed
    assert "probabilities dropped (its per-pixel SOFTMAX does not map)" in printed
    tpu = json.loads((copy / "export" / "model.json").read_text())["models"]["int8_tpu"]
    assert set(tpu["outputs"]) == {"class_map"} and "SOFTMAX" not in tpu["ops"] and "DEPTH_TO_SPACE" not in tpu["ops"]
    compat = json.loads((copy / "export" / "compat_edgetpu_model_int8_tpu.json").read_text())
    assert compat["before_postprocess"]["share"] == 1.0 and compat["before_postprocess"]["cpu_tail"] == ["ARG_MAX",
                                                                                                        "CAST"]
    assert json.loads((copy / "export" / "compat_edgetpu.json").read_text())["first_unmapped"]["op"] == "DEPTH_TO_SPACE"

    # the LiteRT Quantizer's Edge TPU build drops the softmax too; its ARG_MAX reads a DEQUANTIZE
    # (it leaves ARG_MAX float), which the CPU tail takes with it
    assert run_cli("tfpipe.convert.__main__", [*config, "--target", "edgetpu", "--engine", "litert"]) == 0
    litert = json.loads((copy / "export" / "model.json").read_text())["models"]["int8_litert_tpu"]
    assert set(litert["outputs"]) == {"class_map"} and "SOFTMAX" not in litert["ops"]
    compat = json.loads((copy / "export" / "compat_edgetpu_model_int8_litert_tpu.json").read_text())
    assert compat["before_postprocess"]["share"] == 1.0 and compat["before_postprocess"]["cpu_tail"][-2:] == [
        "ARG_MAX", "CAST"]

    models = [str(copy / "export" / f"model_{label}.tflite") for label in ("int8", "int8_tpu")]
    assert run_cli("tfpipe.evaluate.__main__", [*config, "--models", *models]) == 0
    rows = {m["name"]: m for m in json.loads((copy / "eval" / "parity.json").read_text())["models"]}
    assert rows["int8_tpu"]["status"] == "ok" and rows["int8_tpu"]["outputs"] == {}
    assert 0 < rows["int8_tpu"]["agreement_pixels"] <= 1

    # the rewritten trained network computes what the trained one does (one epoch leaves this
    # model's logits too close for its int8 class maps to be compared here: see README's figures)
    from tfpipe.delegates.rewrite import edgetpu_build
    from tfpipe.train.trainer import load_float_model

    model = load_float_model(run)
    images = np.random.default_rng(0).uniform(-1, 1, (4, *model.input_shape[1:])).astype(np.float32)
    rewritten, _ = edgetpu_build(model)
    np.testing.assert_allclose(rewritten.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5)
