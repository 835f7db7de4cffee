"""The Coral runner (export/coral/run.py) on the quickstart's int8 bundle, as on a device: in the
tflite-runtime venv (no TensorFlow there), falling back to the CPU without an Edge TPU, printing
for each image the same classes and scores as the evaluator's own path (TensorFlow's
preprocessing, the runtime worker) gives for the same images."""

import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, needs_fashion_mnist

pytestmark = [needs_fashion_mnist, pytest.mark.slow]
TFLITE_PYTHON = REPO / ".venv-tflite" / "bin" / "python"
RUNNER = REPO / "export" / "coral" / "run.py"
needs_device_venv = pytest.mark.skipif(not TFLITE_PYTHON.exists(),
                                       reason="`make test` builds .venv-tflite (tflite-runtime 2.14, numpy<2, pillow)")


def run_runner(*args: str, python=TFLITE_PYTHON) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), str(RUNNER), *args], capture_output=True, text=True, timeout=300,
                          cwd="/", env={"PATH": "/usr/bin:/bin"})


@needs_device_venv
def test_the_runner_prints_the_evaluators_predictions_on_the_cpu_fallback(tiny_run, tmp_path):
    from PIL import Image

    from tfpipe.runtime import Worker

    cfg, run, splits, *_ = tiny_run
    count = 12
    paths = []
    for i, pixels in enumerate(splits.test.images[:count]):
        path = tmp_path / f"test_{i:02d}.png"
        Image.fromarray(pixels.squeeze(-1)).save(path)  # [28, 28, 1] -> a grayscale PNG
        paths.append(path)
    done = run_runner("--bundle", str(run.export), *map(str, paths), "--runs", "5")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Edge TPU delegate not available (cannot load libedgetpu.so.1") and \
        lines[0].endswith("running on the CPU")
    assert lines[-1].startswith("latency: median")
    assert lines[-1].endswith("(model_int8.tflite, CPU, 1 thread(s), tflite_runtime)")
    printed = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in lines[1:-1]}
    # the evaluator's path for the same images: TensorFlow's preprocessing, the runtime worker
    inputs = splits.evaluation_arrays(cfg.preprocess_spec())[0][:count]
    with Worker(run.tflite("int8"), backend="tflite_runtime", python=str(TFLITE_PYTHON), threads=1) as worker:
        probabilities = worker.predict({"images": inputs})["probabilities"]
    for path, p in zip(paths, probabilities, strict=True):
        top = np.argsort(-p, kind="stable")[:3]
        assert printed[str(path)] == ", ".join(f"{splits.class_names[k]} {p[k]:.4f}" for k in top)


@needs_device_venv
def test_bad_input_is_one_line_and_exit_2(tiny_run, tmp_path):
    _, run, *_ = tiny_run
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not a picture")
    for args, message in (
            (["--bundle", str(tmp_path), "x.png"], f"{tmp_path / 'model.json'}: no such file"),
            (["--bundle", str(run.export), str(not_an_image)], f"{not_an_image}: not a readable image"),
            (["--bundle", str(run.export), str(tmp_path / "missing.png")], "missing.png: no such image"),
            (["--bundle", str(run.export), "--model", "int4", "x.png"], "no 'int4' model"),
            (["--bundle", str(run.export)], "give image files or --camera INDEX"),
            (["--bundle", str(run.export), "--threads", "0", "x.png"], "--threads: 0 is not accepted")):
        done = run_runner(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        errors = done.stderr.strip().splitlines()
        assert len(errors) == 1 and errors[0].startswith("export/coral/run.py: error: ") and message in errors[0]


def test_runner_imports_no_tensorflow_where_it_is_installed(tiny_run, tmp_path):
    from PIL import Image

    _, run, splits, *_ = tiny_run
    image = tmp_path / "one.png"
    Image.fromarray(splits.test.images[0].squeeze(-1)).save(image)
    code = (f"import runpy, sys; sys.argv = ['run.py', '--bundle', {str(run.export)!r}, {str(image)!r}, '--cpu', "
            f"'--runs', '1']\n"
            f"try:\n    runpy.run_path({str(RUNNER)!r}, run_name='__main__')\nexcept SystemExit as e:\n"
            f"    assert e.code == 0, e.code\n"
            f"print('tensorflow imported:', 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "tensorflow imported: False", done.stderr
