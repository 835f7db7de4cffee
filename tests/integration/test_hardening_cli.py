"""Issue 18 through the real commands: other people's models and files, two writers, killed
processes. Each bad input is one line on stderr, exit 2, and nothing already written is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from tests.conftest import QUICKSTART, REPO, needs_fashion_mnist, run_cli, tiny_args, write_coco, write_image
from tfpipe.rundir import RunDir

pytestmark = needs_fashion_mnist


def one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def garment_folder(folder, count: int = 24):
    from tfpipe.data import fashion_mnist

    images, _ = fashion_mnist.load(None, False)["test"]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(images[i, ..., 0]).save(folder / f"{i}.png")
    return folder


def third_party(path, classes: int = 7, channels: int = 1, lam=None):
    """A small Keras classifier as other people save them: its output layer is `dense_2`."""
    from tfpipe.backend import keras

    path.parent.mkdir(parents=True, exist_ok=True)
    x = keras.Input((28, 28, channels))
    y = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    y = keras.layers.Flatten()(y)
    if lam is not None:
        y = keras.layers.Lambda(lam, name="sneaky")(y)
    keras.Model(x, keras.layers.Dense(classes, activation="softmax", name="dense_2")(y)).save(path)
    return path


PIXELS = ["--set", "preprocess.scale=0.00392156862745098", "--set", "preprocess.offset=0",
          "--set", "preprocess.resize=stretch"]


def test_an_imported_model_with_its_own_output_name_converts_evaluates_and_verifies(tmp_path, capsys):
    """Its output was not `probabilities`: evaluate, the Coral runner and golden crashed with a KeyError."""
    model = third_party(tmp_path / "emotions.h5")
    folder = garment_folder(tmp_path / "faces")
    argv = ["--model", str(model), "--calibration-data", str(folder), "--classes", "a,b,c,d,e,f,g", *PIXELS,
            "--workdir", str(tmp_path / "runs")]
    assert run_cli("tfpipe.convert.__main__", argv) == 0
    printed = capsys.readouterr().out
    assert "output 'dense_2' as 'probabilities'" in printed
    verify = next(line for line in printed.splitlines() if line.startswith("Verify it: "))
    assert f"--images {folder}" in verify
    run = RunDir(tmp_path / "runs" / "emotions")
    bundle = json.loads(run.model_json.read_text())
    assert bundle["classes"] == list("abcdefg") and list(bundle["outputs"]) == ["probabilities"]
    assert {name for m in bundle["models"].values() for name in m["outputs"]} == {"probabilities"}
    assert run.labels.read_text().split() == list("abcdefg")
    # the printed verify command, as printed: agreement on the user's unlabelled folder
    command = verify.removeprefix("Verify it: python -m tfpipe.evaluate ").split(" (")[0].split()
    assert run_cli("tfpipe.evaluate.__main__", command) == 0
    out = capsys.readouterr().out
    assert "Agreement on 24 unlabelled images" in out
    report = json.loads((run.eval / "agreement.json").read_text())
    rows = {r["name"]: r for r in report["models"]}
    assert rows["fp32"]["argmax_agreement"] == 1.0 and rows["int8"]["argmax_agreement"] >= 0.75
    # the Coral runner decodes the same bundle (no KeyError)
    coral = subprocess.run([sys.executable, str(REPO / "export" / "coral" / "run.py"), "--bundle", str(run.export),
                            "--cpu", str(folder / "0.png")], capture_output=True, text=True, timeout=120)
    assert coral.returncode == 0 and coral.stdout.startswith(f"{folder / '0.png'}: "), coral.stderr

    # importing another model under the same name is refused; --force replaces the whole bundle
    other = third_party(tmp_path / "other" / "emotions.keras", classes=3)
    again = ["--model", str(other), "--calibration-data", str(folder), *PIXELS, "--workdir", str(tmp_path / "runs"),
             "--quantize", "int8"]
    assert run_cli("tfpipe.convert.__main__", again) == 2
    one_line_error(capsys, "already exists", "--name NAME", "--force")
    assert json.loads(run.model_json.read_text()) == bundle  # untouched
    assert run_cli("tfpipe.convert.__main__", [*again, "--force"]) == 0
    replaced = json.loads(run.model_json.read_text())
    assert list(replaced["models"]) == ["int8"] and replaced["classes"] == ["0", "1", "2"]
    assert sorted(p.name for p in run.export.glob("*.tflite")) == ["model_int8.tflite"]
    assert not (run.eval / "agreement.json").exists()


def test_bad_imports_refused_before_anything_is_written(tmp_path, capsys):
    marker = tmp_path / "pwned"

    def lam(x, marker=str(marker)):
        open(marker, "w").close()
        return x

    lambda_h5 = third_party(tmp_path / "lambda.h5", lam=lam)
    marker.unlink()
    seven = third_party(tmp_path / "seven.h5")
    folder = garment_folder(tmp_path / "images", 4)
    cases = [
        (["--model", str(lambda_h5), "--calibration-data", str(folder)], "layer 'sneaky' is a Lambda layer"),
        (["--model", str(seven), "--calibration-data", str(QUICKSTART), *PIXELS],
         "--calibration-data's dataset: 10 classes, but"),
        (["--model", str(seven), "--calibration-data", str(folder), "--classes", "a,b"], "--classes a,b: 2 classes"),
        (["--model", str(seven), "--calibration-data", str(folder), "--output", "logits"],
         "--output logits: " + str(seven) + " has no such output"),
    ]
    for argv, message in cases:
        assert run_cli("tfpipe.convert.__main__", [*argv, "--workdir", str(tmp_path / "runs")]) == 2, message
        one_line_error(capsys, message)
    assert not marker.exists()  # the Lambda's code never ran
    assert not (tmp_path / "runs").exists()


def test_importing_over_a_trained_run_is_refused(copy_run, capsys, tmp_path):
    """`convert --model DIR/tiny.keras` overwrote the trained run runs/tiny without a word."""
    run = RunDir(copy_run / "tiny")
    before = run.float_model.read_bytes()
    model = third_party(tmp_path / "elsewhere" / "tiny.keras", classes=10)
    assert run_cli("tfpipe.convert.__main__", ["--model", str(model), "--calibration-data", str(QUICKSTART),
                                               "--workdir", str(copy_run)]) == 2
    one_line_error(capsys, f"--model: {run.root} already exists")
    assert run.float_model.read_bytes() == before


def test_a_second_writer_is_refused_and_a_killed_writers_temporary_is_not_a_model(copy_run, capsys):
    run = RunDir(copy_run / "tiny")
    truncated = run.export / ".model_int8.x1y2z3.tmp.tflite"  # kill -9 during convert leaves this
    truncated.write_bytes(run.tflite("int8").read_bytes()[:1000])
    stale_gallery = run.eval / "plots" / "gallery_removed_model.png"
    stale_gallery.write_bytes(b"png")
    with run.writer():
        assert not truncated.exists()  # holding the lock proves its writer is dead
        truncated.write_bytes(b"half")
        assert run_cli("tfpipe.convert.__main__", ["--quantize", "fp16", *tiny_args(copy_run)]) == 2
        one_line_error(capsys, "another tfpipe command", "is writing this run")
    # a hidden file is never a model, even while it exists
    assert run_cli("tfpipe.evaluate.__main__", [*tiny_args(copy_run), "--max-drop", "100"]) == 0
    report = json.loads((run.eval / "parity.json").read_text())
    assert "." not in [m["name"][0] for m in report["models"]]
    assert not stale_gallery.exists()  # an earlier evaluation's plots do not pile up


def test_evaluate_refuses_a_model_made_for_another_input_or_task(copy_run, tmp_path, capsys):
    from tfpipe.backend import keras, tf

    def tflite(model, name):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        path = tmp_path / name
        path.write_bytes(converter.convert())
        return path

    rgb = tflite(keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)]),
                 "rgb.tflite")
    assert run_cli("tfpipe.evaluate.__main__", [*tiny_args(copy_run), "--models", str(rgb)]) == 2
    one_line_error(capsys, "rgb.tflite: input", "[1, 32, 32, 3], the run's preprocess gives [1, 32, 32, 1]")
    x = keras.Input((32, 32, 1))
    named = tflite(keras.Model(x, keras.layers.Dense(10, name="logits")(keras.layers.Flatten()(x))), "named.tflite")
    assert run_cli("tfpipe.evaluate.__main__", [*tiny_args(copy_run), "--models", str(named)]) == 2
    one_line_error(capsys, "named.tflite: has no output named probabilities")


def test_a_missing_runtime_package_is_named(copy_run, capsys):
    """A missing tflite_runtime was reported as 'is it a complete .tflite file?'."""
    assert run_cli("tfpipe.evaluate.__main__", [*tiny_args(copy_run), "--runtime", "tflite_runtime"]) == 2
    err = one_line_error(capsys, "--runtime tflite_runtime: no TFLite runtime could be imported")
    assert "complete .tflite" not in err


def test_training_refuses_what_would_crash_it(copy_run, tmp_path, capsys):
    run = RunDir(copy_run / "tiny")
    config = run.root.joinpath("config.yaml").read_text()
    # resuming a killed run with another model
    assert run_cli("tfpipe.train.__main__", [*tiny_args(copy_run), "--set", "model.name=mobilenet_v2_035"]) == 2
    one_line_error(capsys, "its trained model was made by task classification, model mobilenet_v2_075",
                   "this config asks for task classification, model mobilenet_v2_035", "--set name=")
    assert run.root.joinpath("config.yaml").read_text() == config
    # a batch larger than the training split (Keras: 'Expected input data to be non-empty')
    assert run_cli("tfpipe.train.__main__", [*tiny_args(tmp_path, name="big_batch"),
                                             "--set", "train.batch_size=4096"]) == 2
    one_line_error(capsys, "train.batch_size: 4096 is larger than the training split (2,048 images)")


def test_check_writes_elsewhere_or_only_prints(tiny_run, tmp_path, monkeypatch, capsys):
    from tfpipe import io

    _, run, *_ = tiny_run
    model = run.tflite("int8")
    assert run_cli("tfpipe.check", [str(model), "--target", "gpu", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "compat_gpu.json").is_file()

    def read_only(*_args, **_kwargs):  # as root, chmod cannot make a folder read-only: simulate the refusal
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(io, "write_text", read_only)
    assert run_cli("tfpipe.check", [str(model), "--target", "nnapi"]) == 0
    captured = capsys.readouterr()
    assert "NNAPI (predicted)" in captured.out and "not written: " in captured.out
    assert "Permission denied" in captured.out and captured.err == ""


def test_tfpipe_golden_is_a_stage_of_the_dispatcher():
    done = subprocess.run([sys.executable, "-m", "tfpipe", "golden", "--help"], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0 and "--run" in done.stdout and "golden" in done.stdout, done.stderr


def test_a_runtime_worker_dies_with_its_client(tiny_run, tmp_path):
    """A killed evaluate left its worker running about 10 s (the rest of its chunk)."""
    _, run, *_ = tiny_run
    script = ("import os, signal, sys\n"
              "from tfpipe.runtime import Worker\n"
              f"worker = Worker({str(run.tflite('int8'))!r})\n"
              "print(worker._proc.pid, flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == -signal.SIGKILL
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    pytest.fail(f"worker {pid} still alive 5 s after its client was killed")


def test_data_convert_skips_an_annotation_naming_a_missing_image(tmp_path, capsys):
    write_image(tmp_path / "src" / "a.png")
    write_coco(tmp_path / "src", ["a.png", "gone.png"])
    argv = ["convert", "--from", "coco", "--to", "voc", str(tmp_path / "src"), str(tmp_path / "out")]
    assert run_cli("tfpipe.data.__main__", argv) == 2
    one_line_error(capsys, "gone.png: image not found")
    assert not (tmp_path / "out").exists()
    assert run_cli("tfpipe.data.__main__", [*argv, "--on-bad-sample", "skip"]) == 0
    assert "Skipped: " in capsys.readouterr().out
    assert np.asarray(Image.open(tmp_path / "out" / "JPEGImages" / "a.png")).shape == (16, 20, 3)
