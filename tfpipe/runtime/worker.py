"""The runtime worker: `python -m tfpipe.runtime.worker`, driven by `tfpipe.runtime.Worker`.

It imports no TensorFlow, so it can run under another interpreter (a venv with tflite_runtime
and numpy<2) and a crash in native code ends only this process.
"""

from __future__ import annotations

import os
import sys
import traceback

from tfpipe.runtime.protocol import PROGRESS, recv, send


def serve(inbox, outbox) -> None:
    model = None
    progress_fd = None

    def load(path: str, backend: str = "auto", threads: int = 1, reference_kernels: bool = False,
             delegate: str | None = None, progress: str | None = None) -> dict:
        nonlocal model, progress_fd
        from tfpipe.runtime.model import TFLiteModel

        if progress:
            progress_fd = os.open(progress, os.O_WRONLY)
        model = TFLiteModel(path, backend, threads, reference_kernels, delegate)
        return model.describe()

    def predict(inputs, first_index: int = 0):
        if progress_fd is None:
            return model.predict(inputs)
        return model.predict(inputs, lambda i: os.pwrite(progress_fd, PROGRESS.pack(first_index + i), 0))

    def check_delegate(delegate: str, backend: str = "auto") -> str:
        from tfpipe.runtime.backends import interpreter_module, load_delegate

        load_delegate(interpreter_module(backend)[0], delegate)
        return "ok"

    handlers = {
        "load": load,
        "predict": predict,
        "latency": lambda inputs, warmup, runs: model.latency(inputs, warmup, runs),
        "check_delegate": check_delegate,
        "modules": lambda: sorted(sys.modules),
    }
    while (message := recv(inbox)) is not None:
        command, kwargs = message
        try:
            send(outbox, ("ok", handlers[command](**kwargs)))
        except Exception as e:  # reported to the client, which decides what it means
            detail = traceback.format_exc() if os.environ.get("TFPIPE_DEBUG") else ""
            send(outbox, ("error", {"type": type(e).__name__,
                                    "message": f"{type(e).__name__}: {e}".strip() + (f"\n{detail}" if detail else "")}))


def main() -> None:
    # The protocol owns the original stdout; anything else printed (by us or by native code)
    # goes to stderr so it cannot corrupt a message.
    outbox = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, outbox)


if __name__ == "__main__":
    main()
