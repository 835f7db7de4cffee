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
from tfpipe.runtime.backends import DELEGATE_HINTS, delegate_library
from tfpipe.runtime.model import image_input
from tfpipe.runtime.protocol import PROGRESS, recv, send

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class WorkerCrashed(RuntimeError):
    """The worker process died (segfault, abort, kill) while handling a request.

    `image_index` is the sample that was being invoked (absolute, as passed to predict's
    `first_index`), or None when it died outside an invoke (while loading, for example)."""

    def __init__(self, message: str, command: str, status: int, image_index: int | None):
        super().__init__(message)
        self.command, self.status, self.image_index = command, status, image_index


class WorkerError(RuntimeError):
    """The worker answered with an exception; `kind` is its class name (e.g. DelegateError)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


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


def _delegate_error(delegate: str, error: WorkerError) -> TfpipeError:
    message = error.args[0].removeprefix("DelegateError: ")
    hint = DELEGATE_HINTS.get(delegate, "pass the path of a TFLite delegate library (a .so exporting "
                                        "tflite_plugin_create_delegate)")
    return TfpipeError(f"--delegate {delegate}: {message}", hint)


class Worker:
    def __init__(self, model_path: str | Path | None, backend: str = "auto", threads: int = 1,
                 python: str | None = None, reference_kernels: bool = False, delegate: str | None = None):
        """`reference_kernels` runs TFLite's reference kernels (portable integer code, no XNNPACK):
        about 15x slower, the same outputs on every CPU, and within 2 int8 steps across runtime
        versions (XNNPACK's kernels: up to 55 steps between tflite-runtime 2.14 and ai-edge-litert 2.3).
        `delegate`: 'edgetpu', 'gpu' or the path of a delegate library. No `model_path`: a bare
        worker, for `check_delegate`."""
        self.path = check_tflite_file(model_path) if model_path is not None else None
        self.backend = backend
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        # The runtime's own chatter ("Created TensorFlow Lite XNNPACK delegate") would break the
        # progress bars: it is kept aside and shown when the worker dies, or live with --debug.
        self._stderr = None if os.environ.get("TFPIPE_DEBUG") else tempfile.TemporaryFile()
        fd, self._progress = tempfile.mkstemp(prefix="tfpipe-progress-")
        os.write(fd, PROGRESS.pack(-1))
        os.close(fd)
        self._proc = subprocess.Popen([python or sys.executable, "-m", "tfpipe.runtime.worker"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env)
        if self.path is None:
            self.info = {}
            return
        try:
            self.info = self._call("load", path=str(self.path), backend=backend, threads=threads,
                                   reference_kernels=reference_kernels, delegate=delegate, progress=self._progress)
        except WorkerError as e:
            self.close()
            if e.kind == "DelegateError":
                raise _delegate_error(delegate, e) from None
            if e.kind == "RuntimeUnavailable":  # the package is missing, not the file broken
                raise TfpipeError(f"--runtime {backend}: {e.args[0].removeprefix('RuntimeUnavailable: ')}",
                                  "install that runtime in the worker's Python (--runtime-python), or use "
                                  "--runtime auto") from None
            raise TfpipeError(f"{self.path}: the runtime cannot load it: {e}",
                              "is it a complete .tflite file?") from None
        except WorkerCrashed:
            self.close()
            raise

    def _image_index(self) -> int | None:
        try:
            with open(self._progress, "rb") as f:
                (index,) = PROGRESS.unpack(f.read(PROGRESS.size))
        except (OSError, ValueError, TypeError):  # struct.error is a ValueError
            return None
        return None if index < 0 else index

    def _call(self, command: str, **kwargs):
        try:
            send(self._proc.stdin, (command, kwargs))
            reply = recv(self._proc.stdout)
        except (BrokenPipeError, OSError):
            reply = None
        if reply is None:
            status = self._proc.wait()
            index = self._image_index() if command == "predict" else None
            where = f" at image {index}" if index is not None else ""
            raise WorkerCrashed(f"the runtime worker for {self.path or 'a delegate check'} died with status "
                                f"{status} during '{command}'{where}{self._stderr_tail()}", command, status, index)
        status, value = reply
        if status == "error":
            raise WorkerError(value["type"], value["message"])
        return value

    @property
    def inputs(self) -> dict:
        return self.info["inputs"]

    @property
    def outputs(self) -> dict:
        return self.info["outputs"]

    def image_input(self, shape: tuple[int, ...] | list[int] | None = None) -> str:
        return image_input(self.inputs, self.path, shape)

    def predict(self, inputs: dict[str, np.ndarray], first_index: int = 0) -> dict[str, np.ndarray]:
        """Outputs for every sample; `first_index` numbers the first one in crash reports."""
        return self._call("predict", inputs=inputs, first_index=first_index)

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
        if self._progress is not None:
            Path(self._progress).unlink(missing_ok=True)
            self._progress = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_delegate(delegate: str, backend: str = "auto", python: str | None = None) -> str:
    """Load the delegate library in a throwaway worker (a broken library cannot take the caller
    down); a TfpipeError naming it when it cannot be loaded. Returns the library file name."""
    with Worker(None, backend=backend, python=python) as worker:
        try:
            worker._call("check_delegate", delegate=delegate, backend=backend)
        except WorkerError as e:
            if e.kind == "DelegateError":
                raise _delegate_error(delegate, e) from None
            raise TfpipeError(f"--delegate {delegate}: {e}", "check --runtime and the library") from None
        except WorkerCrashed as e:
            raise TfpipeError(f"--delegate {delegate}: loading {delegate_library(delegate)} killed the "
                              f"runtime worker (status {e.status})", "is it a TFLite delegate library?") from None
    return delegate_library(delegate)
