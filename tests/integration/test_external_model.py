"""`convert --model PATH`: a Keras model tfpipe did not build (an H5 written by TensorFlow 2.12 /
Keras 2.12, tests/fixtures/third_party/), converted and then evaluated by tfpipe."""

import json

import numpy as np
import pytest

from tests.conftest import REPO, needs_fashion_mnist, run_cli

pytestmark = needs_fashion_mnist

H5 = REPO / "tests" / "fixtures" / "third_party" / "fashion_cnn_keras212.h5"
# the fixture's own preprocess: pixels / 255, 28x28 as is
PIXELS_OVER_255 = ["--set", "preprocess.scale=0.00392156862745098", "--set", "preprocess.offset=0",
                   "--set", "preprocess.resize=stretch"]


@pytest.mark.slow
def test_a_keras_212_h5_converts_and_tfpipe_evaluates_it(tmp_path, capsys):
    argv = ["--model", str(H5), "--calibration-data", str(REPO / "configs" / "quickstart.yaml"), *PIXELS_OVER_255,
            "--set", "data.test_limit=1000", "--set", "convert.calibration_samples=100", "--workdir", str(tmp_path)]
    assert run_cli("tfpipe.convert.__main__", argv) == 0
    run = tmp_path / "fashion_cnn_keras212"
    assert "Verify it: python -m tfpipe.evaluate --config" in capsys.readouterr().out
    bundle = json.loads((run / "export" / "model.json").read_text())
    assert bundle["model"] == "external" and bundle["models"]["int8"]["source"] == "ptq"
    assert bundle["preprocess"]["scale"] == pytest.approx(1 / 255) and bundle["preprocess"]["height"] == 28
    assert run_cli("tfpipe.evaluate.__main__", ["--config", str(run / "config.yaml"), "--workdir", str(tmp_path),
                                                "--max-drop", "3"]) == 0
    report = json.loads((run / "eval" / "parity.json").read_text())
    models = {m["name"]: m for m in report["models"]}
    # the float figure equals the H5 run directly by Keras on raw pixels / 255: the stated preprocess is the one used
    from tfpipe.backend import keras
    from tfpipe.data import fashion_mnist

    images, labels = fashion_mnist.load(None, False)["test"]
    direct = keras.models.load_model(H5, compile=False).predict(images[:1000] / 255.0, verbose=0)
    assert models["float"]["metrics"]["top1"] == pytest.approx(np.mean(np.argmax(direct, -1) == labels[:1000]))
    assert models["fp32"]["delta_points"]["top1"] == 0
    assert abs(models["int8"]["delta_points"]["top1"]) <= 3


def test_a_folder_of_images_calibrates_with_the_stated_preprocess(tmp_path, capsys):
    from PIL import Image

    from tfpipe.data import fashion_mnist

    images, _ = fashion_mnist.load(None, False)["test"]
    folder = tmp_path / "calibration" / "any_subfolder"
    folder.mkdir(parents=True)
    for i in range(20):
        Image.fromarray(images[i, ..., 0]).save(folder / f"{i}.png")
    argv = ["--model", str(H5), "--calibration-data", str(tmp_path / "calibration"), *PIXELS_OVER_255,
            "--quantize", "int8", "--workdir", str(tmp_path / "runs")]
    assert run_cli("tfpipe.convert.__main__", argv) == 0
    printed = capsys.readouterr().out
    assert "Calibration: images from" in printed and "x * 0.00392157 + 0" in printed
    assert "calibrating on 20 images" in printed
    export = tmp_path / "runs" / "fashion_cnn_keras212" / "export"
    assert (export / "model_int8.tflite").is_file()
    assert (export / "labels.txt").read_text().split() == [str(i) for i in range(10)]


def test_bad_imports_are_one_line_errors(tmp_path, capsys):
    from tfpipe.backend import keras

    flexible = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(4, 3),
                                 keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    flexible.save(tmp_path / "flexible.keras")
    notes = tmp_path / "notes.h5"
    notes.write_text("not a model")
    empty = tmp_path / "empty"
    empty.mkdir()
    calibration = ["--calibration-data", str(REPO / "configs" / "quickstart.yaml")]
    cases = [
        (["--model", str(tmp_path / "missing.h5"), *calibration], "--model: " + str(tmp_path / "missing.h5")
         + " does not exist"),
        (["--model", str(notes), *calibration], "notes.h5: cannot be loaded as a Keras model"),
        (["--model", str(H5)], "--model needs --calibration-data DIR_OR_CONFIG"),
        (["--model", str(H5), "--calibration-data", str(empty)], "empty holds no images"),
        (["--model", str(H5), "--calibration-data", str(tmp_path / "nothing")], "is neither a folder of images"),
        (["--calibration-data", str(empty)], "--calibration-data, --input-size, --output, --classes, --name and "
                                             "--force go with --model or --tflite PATH"),
        (["--model", str(tmp_path / "flexible.keras"), *calibration], "has no fixed height and width"),
        (["--model", str(H5), "--input-size", "32", "32", *calibration], "has a fixed input of 28x28"),
        (["--from-qat", "--model", str(H5), *calibration],
         "--from-qat: --max-drop, --debug-quant, --model and --tflite work"),
        (["--from-qat", "--ptq"], "argument --ptq: not allowed with argument --from-qat"),
        (["--model", str(H5), "--calibration-data", str(empty), "--max-drop", "1"], "a folder of images has none"),
    ]
    for argv, message in cases:
        assert run_cli("tfpipe.convert.__main__", [*argv, "--workdir", str(tmp_path / "runs")]) == 2, message
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "runs").exists()  # nothing written by a refused import
