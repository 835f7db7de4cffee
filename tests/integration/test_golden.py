"""Golden vectors (python -m tfpipe.golden) of the quickstart bundle: the input tensor is the
training pipeline's preprocessing quantized as the model asks, the raw outputs dequantize to the
evaluator's outputs, and the expected predictions are the evaluator's; the Android core (Kotlin, on
the JVM) reproduces them. The detection and segmentation bundles' parity is in their run tests."""

import json

import numpy as np
import pytest

from tests.conftest import kotlin_core_parity, needs_fashion_mnist, run_cli

pytestmark = [needs_fashion_mnist, pytest.mark.slow]


def test_golden_vectors_hold_the_pipelines_input_outputs_and_predictions(tiny_run, tmp_path, capsys):
    from tfpipe.runtime import Worker
    from tfpipe.runtime.quant import dequantize, quantize

    cfg, run, splits, *_ = tiny_run
    out = tmp_path / "golden.json"
    assert run_cli("tfpipe.golden.__main__", ["--run", str(run.root), "--count", "4", "--out", str(out)]) == 0
    assert f"Wrote {out} (4 images)" in capsys.readouterr().out
    golden = json.loads(out.read_text())
    assert golden["format"] == "tfpipe-golden/1" and golden["task"] == "classification"
    assert golden["model_file"] == "model_int8.tflite" and len(golden["samples"]) == 4
    inputs = splits.evaluation_arrays(cfg.preprocess_spec())[0][:4]
    bundle = json.loads(run.model_json.read_text())["models"]["int8"]
    scale, zero_point = bundle["inputs"]["images"]["scale"], bundle["inputs"]["images"]["zero_point"]
    with Worker(run.tflite("int8"), threads=1) as worker:
        probabilities = worker.predict({"images": inputs})["probabilities"]
    for sample, x, p, image in zip(golden["samples"], inputs, probabilities, splits.test.images, strict=False):
        assert sample["pixels"]["shape"] == [28, 28, 1]
        np.testing.assert_array_equal(np.array(sample["pixels"]["data"]).reshape(28, 28, 1), image)
        feed = np.array(sample["input"]["data"], np.int8).reshape(sample["input"]["shape"])
        np.testing.assert_array_equal(feed, quantize(x[None], "int8", scale, zero_point))
        raw = sample["outputs"]["probabilities"]
        assert raw["dtype"] == "int8"  # convert.io_dtype auto: int8 on the cpu target
        np.testing.assert_allclose(dequantize(np.array(raw["data"]), raw["scale"], raw["zero_point"]), p, atol=1e-6)
        top = np.argsort(-p, kind="stable")[:3]
        assert [name for name, _ in sample["expected"]["top"]] == [splits.class_names[k] for k in top]
        np.testing.assert_allclose([s for _, s in sample["expected"]["top"]], p[top], atol=1e-6)


def test_golden_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert run_cli("tfpipe.golden.__main__", ["--run", str(tmp_path)]) == 2
    assert f"{tmp_path / 'config.yaml'}: no such file" in capsys.readouterr().err
    assert run_cli("tfpipe.golden.__main__", ["--run", str(tmp_path), "--count", "0"]) == 2
    assert "--count: 0 is not accepted" in capsys.readouterr().err


def test_the_android_core_decodes_the_classification_golden_vectors_as_python(tiny_run, tmp_path):
    _, run, *_ = tiny_run
    out = tmp_path / "golden_classification.json"
    argv = ["--run", str(run.root), "--count", "16", "--out", str(out)]
    assert run_cli("tfpipe.golden.__main__", argv) == 0
    printed = kotlin_core_parity(out, bundles=(run.model_json,))
    assert ("golden parity: golden_classification.json: classification, 16 samples, 48 ranked classes identical "
            "to Python's") in printed
    assert f"bundle: {run.model_json}: classification, models dynamic, fp16, fp32, int16x8, int8, runs int8" in printed


def test_android_sync_ships_one_model_and_keeps_the_old_bundle_when_it_fails(tiny_run, tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    _, run, *_ = tiny_run
    assets = tmp_path / "assets"

    def sync(*argv):
        return subprocess.run([sys.executable, str(REPO / "export" / "android" / "sync.py"), "--assets", str(assets),
                               *argv], capture_output=True, text=True, check=False)

    done = sync("--run", str(run.root))
    assert done.returncode == 0, done.stderr
    folder = assets / "classification"
    assert f"Synced {run.root} (int8) to {folder}: labels.txt, model.json, model_int8.tflite" in done.stdout
    shipped = json.loads((folder / "model.json").read_text())
    assert list(shipped["models"]) == ["int8"] and shipped["task"] == "classification"
    assert (folder / "model_int8.tflite").read_bytes() == run.tflite("int8").read_bytes()
    assert (folder / "labels.txt").read_text().splitlines() == shipped["classes"]
    assert [p.name for p in assets.iterdir()] == ["classification"]  # no staging folder left behind

    failed = sync("--run", str(run.root), "--model", "fp8")
    assert failed.returncode == 2
    assert failed.stderr.startswith(f"export/android/sync.py: error: {run.export / 'model.json'}: no 'fp8' model")
    assert list(json.loads((folder / "model.json").read_text())["models"]) == ["int8"]  # the old bundle stays
    missing = sync("--run", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "nothing/export/model.json: no such file" in missing.stderr

    assert sync("--run", str(run.root), "--model", "fp32").returncode == 0
    assert sorted(p.name for p in folder.iterdir()) == ["labels.txt", "model.json", "model_fp32.tflite"]
