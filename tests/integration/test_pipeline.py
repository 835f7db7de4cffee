"""One tiny real run (640 Fashion-MNIST images): train -> QAT -> convert every mode -> evaluate."""

import json
import os
import re

import numpy as np
import pytest

from tests.conftest import REPO, needs_fashion_mnist, run_cli, tiny_args

pytestmark = [pytest.mark.slow, needs_fashion_mnist]


def test_convert_trains_and_runs_qat_first_and_says_so(tiny_run):
    *_, report, printed = tiny_run
    assert "No trained model in" in printed and "training it first" in printed
    assert "No QAT model in" in printed and "Converting the qat model to int8 TFLite" in printed
    assert "Using the trained float model" in printed  # the second convert reuses it
    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["model", "top-1"])
    assert [line.split()[0] for line in lines[header + 2 : header + 8]] == ["float", "dynamic", "fp16", "fp32",
                                                                            "int16x8", "int8"]
    assert "Parity gate passed" in printed
    assert report["models"][0]["name"] == "float" and report["models"][0]["metrics"]["top1"] > 0.3  # chance is 0.1


def test_run_directory_holds_every_artefact_and_no_temporary_file(tiny_run):
    _, run, *_ = tiny_run
    for path in (run.root / "config.yaml", run.float_model, run.qat_model, run.labels, run.model_json,
                 run.train / "history.csv", run.eval / "parity.json", run.eval / "report.md",
                 run.eval / "plots" / "confusion.png"):
        assert path.is_file(), path
    assert sorted(p.name for p in run.export.glob("*.tflite")) == sorted(
        f"model_{q}.tflite" for q in ("fp32", "fp16", "dynamic", "int8", "int16x8"))
    assert not [p for p in run.root.rglob("*") if ".tmp" in p.name]
    assert (run.train / "tensorboard").is_dir()
    assert run.labels.read_text().splitlines()[0] == "T-shirt/top"
    import csv

    with (run.train / "history.csv").open() as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    assert len(losses) == 2 and losses[1] < losses[0]  # it learns


def test_model_json_is_the_device_contract(tiny_run):
    cfg, run, splits, *_ = tiny_run

    bundle = json.loads(run.model_json.read_text())
    assert bundle["task"] == "classification" and bundle["classes"] == list(splits.class_names)
    assert bundle["preprocess"] == cfg.preprocess_spec().to_json()
    int8 = bundle["models"]["int8"]
    # convert.io_dtype auto on the cpu target: int8 in and out (no requantizing op at either end)
    assert int8["source"] == "qat" and int8["io_dtype"] == "int8"
    assert int8["inputs"]["images"]["shape"] == [1, 32, 32, 1] and int8["inputs"]["images"]["dtype"] == "int8"
    assert int8["outputs"]["probabilities"]["dtype"] == "int8" and "QUANTIZE" not in int8["ops"]
    assert set(int8["activation_dtypes"]) <= {"int8", "uint8"}
    for entry in bundle["models"].values():
        assert entry["dynamic_tensors"] == [] and not {"SHAPE", "PACK"} & set(entry["ops"])
        assert list(entry["outputs"]) == ["probabilities"]
    assert bundle["models"]["int16x8"]["source"] == "ptq"
    assert "int16" in bundle["models"]["int16x8"]["activation_dtypes"]
    assert bundle["models"]["fp32"]["activation_dtypes"] == ["float32"]


def test_preprocess_is_identical_in_training_evaluation_calibration_and_model_json(tiny_run):
    cfg, run, splits, *_ = tiny_run
    from tfpipe.data.pipeline import ArraySplit, make_dataset
    from tfpipe.data.preprocess import preprocess
    from tfpipe.runtime.contract import PreprocessSpec

    spec = cfg.preprocess_spec()
    device_spec = PreprocessSpec.from_json(json.loads(run.model_json.read_text())["preprocess"])
    assert device_spec == spec
    first = ArraySplit(splits.test.images[:64], splits.test.labels[:64])
    expected = preprocess(first.images, device_spec).numpy()
    evaluated = next(make_dataset(first, spec, 64, 10).as_numpy_iterator())[0]
    np.testing.assert_array_equal(evaluated, expected)
    # Training shuffles; with augmentation off its batch is a permutation of the same inputs.
    trained = next(make_dataset(first, spec, 64, 10, training=True, augmenter=None, seed=3).as_numpy_iterator())[0]
    assert sorted(row.tobytes() for row in trained) == sorted(row.tobytes() for row in expected)
    calib = splits.calibration_inputs(spec, 8, seed=0)
    picked = np.sort(np.random.default_rng(0).choice(len(splits.train), 8, replace=False))
    np.testing.assert_array_equal(calib, preprocess(splits.train.images[picked], device_spec).numpy())
    inputs, labels = splits.evaluation_arrays(spec)  # what the evaluator feeds every model
    np.testing.assert_array_equal(inputs[:64], expected)
    np.testing.assert_array_equal(labels, splits.test.labels)


def test_parity_report(tiny_run):
    cfg, run, _, report, _ = tiny_run
    assert report["schema"] == "tfpipe-parity/1" and report["gate"]["max_drop_points"] == 100
    assert report["dataset"]["samples"] == cfg.data.test_limit == 256
    rows = {m["name"]: m for m in report["models"]}
    assert set(rows) == {"float", "fp32", "fp16", "dynamic", "int8", "int16x8"}
    assert not [m["collapsed_outputs"] for m in rows.values() if "collapsed_outputs" in m]
    fp32 = rows["fp32"]
    assert abs(fp32["delta_points"]["top1"]) <= 0.05 and fp32["agreement_top1"] >= 0.996
    assert fp32["outputs"]["probabilities"]["max_abs_error"] < 1e-4
    assert rows["int8"]["size_ratio_fp32"] < 0.5 and rows["int8"]["runtime"] == "litert"
    for m in report["models"][1:]:
        assert m["latency_ms"]["runs"] == cfg.evaluate.latency_runs and m["latency_ms"]["p90"] >= m["latency_ms"][
            "median"] > 0
    int8 = rows["int8"]
    assert report["workers"] == 1 and int8["status"] == "ok" and "recovered_crashes" not in int8
    float_per_class = np.array(rows["float"]["metrics"]["per_class_top1"])
    np.testing.assert_allclose(int8["delta_per_class_points"],
                               100 * (np.array(int8["metrics"]["per_class_top1"]) - float_per_class))
    worst = int8["worst_disagreements"]
    assert len(worst) == cfg.evaluate.gallery
    flips = [w["top1_differs"] for w in worst]
    assert flips == sorted(flips, reverse=True)  # top-1 flips first
    assert sum(flips) == min(len(worst), round((1 - int8["agreement_top1"]) * 256))
    md = (run.eval / "report.md").read_text()
    assert "| int8 |" in md and "## Per class" in md and "| Trouser | " in md
    plots = {p.name for p in (run.eval / "plots").glob("*.png")}
    galleries = {f"gallery_{m}.png" for m in rows if m != "float"}
    # training, update_ratio and layers.png: from train/history.csv, update_ratio.csv and layer_stats.csv
    assert plots == {"confusion.png", "latency.png", "training.png", "update_ratio.png", "layers.png"} | galleries
    for name in plots:
        assert f"(plots/{name})" in md
    page = (run.eval / "report.html").read_text()
    # self-contained: every plot embedded, nothing fetched from elsewhere
    assert page.count("src='data:image/png;base64,") == len(plots)
    # (a search for "http" failed 1 run in ~20: base64 PNG data holds it by chance, 64^-4 per place)
    # self-contained: every image is a data URI; the one link is to the explain page beside the run's eval/
    assert not re.findall(r"""(?:src|href)=['"](?!data:|\.\./explain/index\.html['"])""", page), \
        "a resource outside the page"
    umask = os.umask(0)
    os.umask(umask)
    assert (run.eval / "report.html").stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes it, not 0600


def test_gate_fails_naming_the_metric_and_keeps_the_reports(tiny_run, copy_run, tmp_path, capsys):
    """A converted model that lost accuracy (an untrained network) fails the gate with exit 1."""
    cfg, run, *_ = tiny_run
    from tfpipe import models
    from tfpipe.convert.tflite import to_tflite

    untrained = models.build(cfg.model, cfg.task, 10)
    bad = tmp_path / "model_untrained.tflite"
    bad.write_bytes(to_tflite(untrained, "none", "float", None))
    assert run_cli("tfpipe.evaluate.__main__", tiny_args(copy_run, "--models", str(bad),
                                                          str(run.tflite("none")))) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "FAILED: model_untrained.tflite: top1 dropped" in err[0]
    assert "model_fp32.tflite" not in err[0]
    report = json.loads((copy_run / "tiny" / "eval" / "parity.json").read_text())
    assert report["gate"]["passed"] is False and len(report["models"]) == 3


def test_a_corrupt_model_json_stops_convert_before_anything_is_replaced(tiny_run, tmp_path, capsys):
    import shutil

    cfg, run, *_ = tiny_run
    copy = tmp_path / "tiny"
    shutil.copytree(run.root, copy)
    (copy / "export" / "model.json").write_text('{"models": {"fp32": ')
    before = (copy / "export" / "model_fp32.tflite").stat().st_mtime_ns
    assert run_cli("tfpipe.convert.__main__", tiny_args(tmp_path, "--quantize", "none")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "export/model.json: not valid JSON" in err[0]
    assert (copy / "export" / "model_fp32.tflite").stat().st_mtime_ns == before
    assert (copy / "export" / "model.json").read_text() == '{"models": {"fp32": '


TFLITE_PYTHON = REPO / ".venv-tflite" / "bin" / "python"


def _softmax_input_scale(path) -> float:
    """The quantization step of the logits the model's SOFTMAX reads (0 when they are float)."""
    from tfpipe.runtime.graph import read_graph

    graph = read_graph(path)
    (softmax,) = [op for op in graph.ops if op.kind == "SOFTMAX"]
    logits = graph.op_inputs(softmax)[0]
    return logits.scale[0] if logits.quantized else 0.0


@pytest.mark.skipif(not TFLITE_PYTHON.exists(), reason="`make test` builds .venv-tflite (tflite-runtime 2.14, numpy<2)")
def test_tflite_runtime_in_its_own_venv_predicts_as_litert_within_one_logit_step(tiny_run, tmp_path):
    import shutil

    from tfpipe.data.pipeline import make_dataset
    from tfpipe.runtime import Worker

    cfg, run, splits, *_ = tiny_run
    inputs = next(make_dataset(splits.test, cfg.preprocess_spec(), 128, 10,
                               with_labels=False).as_numpy_iterator())
    for mode in ("int8", "none"):
        # Reference kernels: FULLY_CONNECTED requantizes one step apart between the two versions
        # (XNNPACK's kernels: dozens of steps). Logits one step s apart move each softmax output p by
        # at most p·(e^2s − 1) (numerator and denominator by e^±s each), plus rounding: at p = 0.36
        # and s = 0.04 that is 3 output steps, seen once in CI where a flat 2 steps failed.
        with Worker(run.tflite(mode), backend="litert", reference_kernels=True) as litert, \
                Worker(run.tflite(mode), backend="tflite_runtime", python=str(TFLITE_PYTHON),
                       reference_kernels=True) as legacy:
            assert legacy.info["backend"] == "tflite_runtime"
            modules = legacy.loaded_modules()
            assert "tflite_runtime" in modules and "tensorflow" not in modules and "ai_edge_litert" not in modules
            step = litert.info["outputs"]["probabilities"]["scale"] or 1e-6  # float file: scale 0
            logit_step = _softmax_input_scale(run.tflite(mode))  # 0 in the float file
            np.testing.assert_allclose(legacy.predict({"images": inputs})["probabilities"],
                                       litert.predict({"images": inputs})["probabilities"],
                                       rtol=np.expm1(2 * logit_step), atol=2 * step)

    copy = tmp_path / "tiny"
    shutil.copytree(run.root, copy)
    common = tiny_args(tmp_path, "--max-drop", "100", "--reference-kernels", "--models",
                       str(copy / "export" / "model_int8.tflite"))
    rows = {}
    for runtime, extra in (("litert", []), ("tflite_runtime", ["--runtime-python", str(TFLITE_PYTHON)])):
        assert run_cli("tfpipe.evaluate.__main__", [*common, "--runtime", runtime, *extra]) == 0
        saved = json.loads((copy / "eval" / "parity.json").read_text())
        assert saved["reference_kernels"] is True
        rows[runtime] = saved["models"][1]
    assert rows["tflite_runtime"]["runtime"] == "tflite_runtime" and rows["litert"]["runtime"] == "litert"
    legacy, litert = rows["tflite_runtime"], rows["litert"]
    # a 2-step difference can flip the top class of an image whose two best classes are that close
    assert abs(legacy["metrics"]["top1"] - litert["metrics"]["top1"]) <= 2 / 256
    assert abs(legacy["agreement_top1"] - litert["agreement_top1"]) <= 2 / 256
    for name, error in litert["outputs"].items():
        assert legacy["outputs"][name]["cosine_similarity"] == pytest.approx(error["cosine_similarity"], abs=1e-4)
