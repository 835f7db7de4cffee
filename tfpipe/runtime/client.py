"""`Worker`: a .tflite model loaded in its own `python -m tfpipe.runtime.worker` process.

A subprocess rather than multiprocessing: spawn would re-import the caller's __main__ (and
with it TensorFlow), fork would inherit it. `python` may name another interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tfpipe.errors import TfpipeError
from tfpipe.runtime.protocol import recv, send

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class WorkerCrashed(RuntimeError):
    """The worker process died (segfault, abort, kill) while handling a request."""


def check_tflite_file(path: str | Path) -> Path:
    """A readable FlatBuffer with the TFLite file identifier, else a TfpipeError naming it."""
    path = Path(path)
    if not path.is_file():
        raise TfpipeError(f"model file not found: {path}", "pass the path of a .tflite file")
    with path.open("rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise TfpipeError(f"{path}: not a TFLite model (no TFL3 file identifier)",
                          "expected a .tflite file written by the TFLite converter")
    return path


class Worker:
    def __init__(self, model_path: str | Path, backend: str = "auto", threads: int = 1, python: str | None = None,
                 reference_kernels: bool = False):
        """`reference_kernels` runs TFLite's builtin kernels without the default XNNPACK delegate:
        slower, but bit-identical across runtime versions (XNNPACK's int8 kernels are not; measured
        up to 25 quantization steps apart between tflite-runtime 2.14 and ai-edge-litert 2.3)."""
        self.path = check_tflite_file(model_path)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        # The runtime's own chatter ("Created TensorFlow Lite XNNPACK delegate") would break the
        # progress bars: it is kept aside and shown when the worker dies, or live with --debug.
        self._stderr = None if os.environ.get("TFPIPE_DEBUG") else tempfile.TemporaryFile()
        self._proc = subprocess.Popen([python or sys.executable, "-m", "tfpipe.runtime.worker"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env)
        try:
            self.info = self._call("load", path=str(self.path), backend=backend, threads=threads,
                                   reference_kernels=reference_kernels)
        except RuntimeError as e:
            self.close()
            raise TfpipeError(f"{self.path}: the runtime cannot load it: {e}",
                              "is it a complete .tflite file?") from None

    def _call(self, command: str, **kwargs):
        try:
            send(self._proc.stdin, (command, kwargs))
            reply = recv(self._proc.stdout)
        except (BrokenPipeError, OSError):
            reply = None
        if reply is None:
            status = self._proc.wait()
            raise WorkerCrashed(f"the runtime worker for {self.path} died with status {status} during "
                                f"'{command}'{self._stderr_tail()}")
        status, value = reply
        if status == "error":
            raise RuntimeError(value)
        return value

    @property
    def inputs(self) -> dict:
        return self.info["inputs"]

    @property
    def outputs(self) -> dict:
        return self.info["outputs"]

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._call("predict", inputs=inputs)

    def latency(self, inputs: dict[str, np.ndarray], warmup: int = 10, runs: int = 100) -> list[float]:
        return self._call("latency", inputs=inputs, warmup=warmup, runs=runs)

    def loaded_modules(self) -> list[str]:
        return self._call("modules")

    def _stderr_tail(self, lines: int = 5) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        tail = self._stderr.read().decode(errors="replace").strip().splitlines()[-lines:]
        return (": " + " | ".join(tail)) if tail else ""

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
