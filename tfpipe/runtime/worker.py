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


def die_with_parent(interval: float = 0.2) -> None:
    """End this process when the client that started it dies (kill -9 included): a worker busy in
    a long predict reads no pipe, so it would go on for its whole chunk. Polling the parent's pid
    rather than prctl(PR_SET_PDEATHSIG), which fires when the parent's *thread* ends, and the
    evaluator starts workers from short-lived pool threads."""
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()


def main() -> None:
    die_with_parent()
    # The protocol owns the original stdout; anything else printed (by us or by native code)
    # goes to stderr so it cannot corrupt a message.
    outbox = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, outbox)


if __name__ == "__main__":
    main()
