"""Golden vectors (python -m tfpipe.export golden) of the quickstart bundle: the input tensor is the
training pipeline's preprocessing quantized as the model asks, the raw outputs dequantize to the
evaluator's outputs, and the expected predictions are the evaluator's; the Android core (Kotlin, on
the JVM) reproduces them. The detection and segmentation bundles' parity is in their run tests."""

import json

import numpy as np
import pytest

from tests.conftest import kotlin_core_parity, needs_fashion_mnist, run_cli

pytestmark = [needs_fashion_mnist, pytest.mark.slow]


def test_golden_vectors_hold_the_pipelines_input_outputs_and_predictions(tiny_run, tmp_path, capsys):
    from tfpipe.data.pipeline import evaluation_arrays
    from tfpipe.data.preprocess import PreprocessSpec
    from tfpipe.runtime import Worker
    from tfpipe.runtime.quant import dequantize, quantize

    cfg, run, splits, *_ = tiny_run
    out = tmp_path / "golden.json"
    assert run_cli("tfpipe.export.__main__", ["golden", "--run", str(run.root), "--count", "4", "--out", str(out)]) == 0
    assert f"Wrote {out} (4 images)" in capsys.readouterr().out
    golden = json.loads(out.read_text())
    assert golden["format"] == "tfpipe-golden/1" and golden["task"] == "classification"
    assert golden["model_file"] == "model_int8.tflite" and len(golden["samples"]) == 4
    inputs = evaluation_arrays(splits, PreprocessSpec.from_config(cfg))[0][:4]
    bundle = json.loads(run.model_json.read_text())["models"]["int8"]
    scale, zero_point = bundle["inputs"]["images"]["scale"], bundle["inputs"]["images"]["zero_point"]
    with Worker(run.tflite("int8"), threads=1) as worker:
        probabilities = worker.predict({"images": inputs})["probabilities"]
    for sample, x, p, image in zip(golden["samples"], inputs, probabilities, splits.test.images, strict=False):
        assert sample["pixels"]["shape"] == [28, 28, 1]
        np.testing.assert_array_equal(np.array(sample["pixels"]["data"]).reshape(28, 28, 1), image)
        feed = np.array(sample["input"]["data"], np.uint8).reshape(sample["input"]["shape"])
        np.testing.assert_array_equal(feed, quantize(x[None], "uint8", scale, zero_point))
        raw = sample["outputs"]["probabilities"]
        assert raw["dtype"] == "uint8"
        np.testing.assert_allclose(dequantize(np.array(raw["data"]), raw["scale"], raw["zero_point"]), p, atol=1e-6)
        top = np.argsort(-p, kind="stable")[:3]
        assert [name for name, _ in sample["expected"]["top"]] == [splits.class_names[k] for k in top]
        np.testing.assert_allclose([s for _, s in sample["expected"]["top"]], p[top], atol=1e-6)


def test_golden_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert run_cli("tfpipe.export.__main__", ["golden", "--run", str(tmp_path)]) == 2
    assert f"{tmp_path / 'config.yaml'}: no such file" in capsys.readouterr().err
    assert run_cli("tfpipe.export.__main__", ["golden", "--run", str(tmp_path), "--count", "0"]) == 2
    assert "--count: 0 is not accepted" in capsys.readouterr().err


def test_the_android_core_decodes_the_classification_golden_vectors_as_python(tiny_run, tmp_path):
    _, run, *_ = tiny_run
    out = tmp_path / "golden_classification.json"
    argv = ["golden", "--run", str(run.root), "--count", "16", "--out", str(out)]
    assert run_cli("tfpipe.export.__main__", argv) == 0
    printed = kotlin_core_parity(out)
    assert ("golden parity: golden_classification.json: classification, 16 samples, 48 ranked classes identical "
            "to Python's") in printed
