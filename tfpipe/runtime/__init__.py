"""Running .tflite models: interpreter backends, (de)quantization and an isolated worker process.

This package imports NO TensorFlow (the `tf` backend, last in line, only inside a worker that
asked for it), so the same code runs on a device next to tflite_runtime.
"""

from tfpipe.runtime.client import Worker, WorkerCrashed, WorkerError, check_delegate, check_tflite_file

__all__ = ["Worker", "WorkerCrashed", "WorkerError", "check_delegate", "check_tflite_file"]
