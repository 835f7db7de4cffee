"""python -m tfpipe.doctor: what this machine has for tfpipe, and what is missing."""

from __future__ import annotations

import ctypes.util
import importlib.metadata
import shutil
import subprocess
import sys

from tfpipe.cli import Stage, main

PACKAGES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "keras-cv", "ai-edge-litert",
            "tflite-runtime", "numpy", "pycocotools")
TOOLS = ("edgetpu_compiler", "kotlinc", "java")
DELEGATE_LIBS = {"edgetpu": "edgetpu", "gpu": "tensorflowlite_gpu_delegate"}


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _runtime_loads(module: str) -> str:
    """Import a runtime in a child process: tflite_runtime can crash next to TensorFlow."""
    code = f"import {module}.interpreter"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if result.returncode == 0:
        return "ok"
    lines = (result.stderr.strip() or f"exit status {result.returncode}").splitlines()
    return f"fails: {lines[-1][:100]}"


def _tflite_venv() -> str:
    """The venv `make test` builds for --runtime-python: tflite-runtime 2.14 with numpy<2."""
    from pathlib import Path

    python = Path(__file__).resolve().parents[1] / ".venv-tflite" / "bin" / "python"
    if not python.exists():
        return f"absent ({python}; `make test` builds it)"
    code = ("import numpy, tflite_runtime, tflite_runtime.interpreter; "
            "print(tflite_runtime.__version__, numpy.__version__)")
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120)
    if result.returncode:
        return f"broken: {(result.stderr.strip() or 'no output').splitlines()[-1][:100]}"
    runtime, numpy = result.stdout.split()
    return f"ok, tflite-runtime {runtime}, numpy {numpy} (--runtime-python {python})"


def add_arguments(parser) -> None:
    pass


def _line(label: str, value: str) -> None:
    print(f"{label:<31}{value}")


def run(args, cfg) -> int:
    _line("python", f"{sys.version.split()[0]} ({sys.executable})")
    for package in PACKAGES:
        _line(package, _version(package))
    from tfpipe.backend import keras_package

    keras_module = keras_package()
    _line("Keras 2 active", f"{'yes' if keras_module == 'tf_keras' else 'NO'} (tf.keras.Model is from {keras_module})")
    for name, module in (("ai-edge-litert", "ai_edge_litert"), ("tflite-runtime", "tflite_runtime")):
        status = _runtime_loads(module) if _version(name) != "not installed" else "not installed"
        _line(f"runtime {name}", status)
    _line("runtime tf.lite", "ok (inside TensorFlow)")
    _line("venv .venv-tflite", _tflite_venv())
    from tfpipe.data import fashion_mnist

    try:
        folder = fashion_mnist.locate(None, allow_download=False)
        _line("dataset fashion_mnist", str(folder))
    except Exception as e:
        _line("dataset fashion_mnist", f"missing ({e})")
    for delegate, lib in DELEGATE_LIBS.items():
        found = ctypes.util.find_library(lib)
        _line(f"delegate {delegate}", found or f"not found (lib{lib}.so)")
    for tool in TOOLS:
        _line(f"tool {tool}", shutil.which(tool) or "not on PATH")
    return 0


STAGE = Stage("doctor", "Print versions, the Keras mode, datasets, runtimes, delegates and tools found here.",
              "python -m tfpipe.doctor", add_arguments, run, needs_config=False)

if __name__ == "__main__":
    main(STAGE)
