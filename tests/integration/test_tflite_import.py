"""`convert --tflite PATH`: a float .tflite tfpipe did not write (made here with plain
tf.lite.TFLiteConverter from the Keras 2.12 H5 of tests/fixtures/third_party/, so no tfpipe
signature names, a dynamic batch and the file's own output name), quantized by the LiteRT
Quantizer and verified against itself."""

import json

import numpy as np
import pytest

from tests.conftest import REPO, needs_fashion_mnist, run_cli

pytestmark = needs_fashion_mnist

H5 = REPO / "tests" / "fixtures" / "third_party" / "fashion_cnn_keras212.h5"
PIXELS_OVER_255 = ["--set", "preprocess.scale=0.00392156862745098", "--set", "preprocess.offset=0",
                   "--set", "preprocess.resize=stretch"]


def _folder(path, images):
    from PIL import Image

    path.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image[..., 0]).save(path / f"{i}.png")
    return path


@pytest.fixture(scope="module")
def vendor(tmp_path_factory):
    """The third-party float file and three folders of real test images: calibration (200),
    held-out (200 others) and all-black (50)."""
    from tfpipe.backend import keras, tf
    from tfpipe.data import fashion_mnist

    root = tmp_path_factory.mktemp("vendor")
    model = keras.models.load_model(H5, compile=False)
    (root / "vendor.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    images, _ = fashion_mnist.load(None, False)["test"]
    return {"file": root / "vendor.tflite", "calibration": _folder(root / "calibration", images[:200]),
            "held_out": _folder(root / "held_out", images[200:400]),
            "black": _folder(root / "black", np.zeros((50, 28, 28, 1), np.uint8)), "root": root}


@pytest.mark.slow
def test_a_third_party_float_tflite_is_quantized_and_its_agreement_reported(vendor, capsys):
    runs = vendor["root"] / "runs"
    argv = ["--tflite", str(vendor["file"]), "--calibration-data", str(vendor["calibration"]), *PIXELS_OVER_255,
            "--workdir", str(runs)]
    assert run_cli("tfpipe.convert.__main__", argv) == 0
    printed = capsys.readouterr().out
    assert "static_wi8_ai8, calibrating on 200 images" in printed and "WARNING" not in printed
    bundle = json.loads((runs / "vendor" / "export" / "model.json").read_text())
    assert sorted(bundle["models"]) == ["fp32", "int8_litert"]
    int8 = bundle["models"]["int8_litert"]
    assert (int8["engine"], int8["source"], int8["io_dtype"]) == ("litert", "ptq", "int8")
    assert int8["inputs"]["pixels"]["dtype"] == "int8" and int8["outputs"]["probabilities"]["dtype"] == "int8"
    assert bundle["models"]["fp32"]["source"] == "imported"

    evaluate = ["--config", str(runs / "vendor" / "config.yaml"), "--workdir", str(runs)]
    assert run_cli("tfpipe.evaluate.__main__", [*evaluate, "--images", str(vendor["held_out"])]) == 0
    report = json.loads((runs / "vendor" / "eval" / "agreement.json").read_text())
    assert report["reference"].endswith("model_fp32.tflite") and report["images"]["count"] == 200
    [row] = report["models"]
    # the file's top-1 on the same 200 images, by the float .tflite itself: measured 0.97
    assert row["name"] == "int8_litert" and row["argmax_agreement"] >= 0.93, row
    assert "collapsed_outputs" not in row and row["outputs"]["probabilities"]["distinct_values"] > 50
    assert "int8_litert     " in capsys.readouterr().out

    # all-black calibration: said at convert time, and the evaluator flags the collapsed output
    argv = ["--tflite", str(vendor["file"]), "--calibration-data", str(vendor["black"]), *PIXELS_OVER_255,
            "--workdir", str(runs), "--name", "black"]
    assert run_cli("tfpipe.convert.__main__", argv) == 0
    assert "WARNING: every calibration input value is 0 (50 images, e.g. all black)" in capsys.readouterr().out
    evaluate = ["--config", str(runs / "black" / "config.yaml"), "--workdir", str(runs)]
    assert run_cli("tfpipe.evaluate.__main__", [*evaluate, "--images", str(vendor["held_out"])]) == 0
    printed = capsys.readouterr().out
    assert "WARNING: model_int8_litert.tflite: output 'probabilities' is the same for all 200 samples" in printed
    [row] = json.loads((runs / "black" / "eval" / "agreement.json").read_text())["models"]
    assert row["collapsed_outputs"] and row["argmax_agreement"] < 0.5


@pytest.mark.slow
def test_with_a_labelled_config_the_evaluator_scores_it_against_the_float_file(vendor, tmp_path):
    argv = ["--tflite", str(vendor["file"]), "--calibration-data", str(REPO / "configs" / "quickstart.yaml"),
            *PIXELS_OVER_255, "--set", "data.test_limit=1000", "--set", "convert.calibration_samples=100",
            "--workdir", str(tmp_path)]
    assert run_cli("tfpipe.convert.__main__", argv) == 0
    run = tmp_path / "vendor"
    assert run_cli("tfpipe.evaluate.__main__", ["--config", str(run / "config.yaml"), "--workdir", str(tmp_path),
                                                "--max-drop", "3"]) == 0
    report = json.loads((run / "eval" / "parity.json").read_text())
    models = {m["name"]: m for m in report["models"]}
    assert models["float"]["kind"] == "tflite" and models["float"]["file"].endswith("model_fp32.tflite")
    assert report["dataset"]["samples"] == 1000 and models["fp32"]["delta_points"]["top1"] == 0
    assert abs(models["int8_litert"]["delta_points"]["top1"]) <= 3 and report["gate"]["passed"]


def _detector_with_postprocess(path):
    """A tiny detector ending in TFLite_Detection_PostProcess (a custom op), as a vendor ships one."""
    from tfpipe.backend import keras
    from tfpipe.config import DetectionConfig
    from tfpipe.convert.tflite import to_tflite
    from tfpipe.runtime.contract import BOXES, SCORES

    i = keras.Input((8, 8, 3), name="images")
    x = keras.layers.Reshape((64, 3))(i)
    model = keras.Model(i, [keras.layers.Dense(4, name=BOXES)(x),
                            keras.layers.Dense(3, activation="sigmoid", name=SCORES)(x)])
    anchors = np.tile(np.array([[0.5, 0.5, 0.2, 0.2]], np.float32), (64, 1))
    path.write_bytes(to_tflite(model, "none", "float", None, postprocess=(anchors, DetectionConfig())))
    return path


def test_bad_tflite_files_are_one_line_errors(vendor, tmp_path, capsys):
    from tfpipe.backend import keras, tf

    detector = _detector_with_postprocess(tmp_path / "detector.tflite")
    i = keras.Input((4, 4, 1))
    flat = keras.layers.Flatten()(i)
    two = keras.Model(i, [keras.layers.Dense(2, name="a")(flat), keras.layers.Dense(3, name="b")(flat)])
    (tmp_path / "two.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(two).convert())
    from tfpipe.convert import litert

    quantized = tmp_path / "quantized.tflite"
    quantized.write_bytes(litert.quantize(vendor["file"].read_bytes(), "int8",
                                          np.random.default_rng(0).random((4, 28, 28, 1), np.float32)))
    calibration = ["--calibration-data", str(vendor["calibration"])]
    cases = [
        (["--tflite", str(detector), *calibration], "detector.tflite: op TFLite_Detection_PostProcess is a custom op"),
        (["--tflite", str(tmp_path / "two.tflite"), *calibration], "two.tflite has 2 outputs"),
        (["--tflite", str(tmp_path / "missing.tflite"), *calibration], "model file not found"),
        (["--tflite", str(vendor["file"])], "--tflite needs --calibration-data DIR_OR_CONFIG"),
        (["--tflite", str(vendor["file"]), *calibration, "--max-drop", "1"], "do not apply to --tflite"),
        (["--tflite", str(vendor["file"]), *calibration, "--quantize", "fp16"], "--quantize fp16 do not apply"),
        (["--tflite", str(vendor["file"]), "--model", str(H5), *calibration], "--model and --tflite"),
        (["--tflite", str(quantized), *calibration], "quantized.tflite: already quantized"),
    ]
    for argv, message in cases:
        assert run_cli("tfpipe.convert.__main__", [*argv, "--workdir", str(tmp_path / "runs")]) == 2, message
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "runs").exists()  # nothing written by a refused import


def test_a_quantizer_failing_on_the_file_is_one_line_and_writes_no_run(vendor, tmp_path, capsys, monkeypatch):
    """Every mode is made in memory before the run is written: a file the LiteRT Quantizer cannot
    handle leaves no half-imported run behind (simulated: the library raising inside quantize)."""
    from litert_quantizer import quantizer

    def broken(*args, **kwargs):
        raise KeyError("op CUSTOM_THING has no quantization recipe")

    monkeypatch.setattr(quantizer.Quantizer, "quantize", broken)
    argv = ["--tflite", str(vendor["file"]), "--calibration-data", str(vendor["calibration"]), *PIXELS_OVER_255,
            "--workdir", str(tmp_path / "runs")]
    assert run_cli("tfpipe.convert.__main__", argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "the LiteRT Quantizer could not quantize (static_wi8_ai8) this model: 'op CUSTOM_THING" in err
    assert not any(p.is_file() for p in (tmp_path / "runs").rglob("*") if p.name != ".lock")
