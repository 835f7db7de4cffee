"""The one place TensorFlow, tf_keras and tensorflow-model-optimization are imported.

Every tfpipe module that needs them does `from tfpipe.backend import tf, keras`, so the Keras-2
guard below runs before any model is built.
"""

import os
import sys
from contextlib import contextmanager

import tfpipe  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from tfpipe.errors import TfpipeError


@contextmanager
def native_output_silenced(fds: tuple[int, ...] = (2,)):
    """Send what native code writes to these file descriptors to /dev/null for the block.

    TensorFlow's C++ start-up chatter (CUDA probing on a CPU machine, oneDNN notices) is written
    before absl logging starts, so TF_CPP_MIN_LOG_LEVEL cannot silence it, and the converter prints
    its settings on stdout. Python exceptions still carry their messages; --debug
    (TF_CPP_MIN_LOG_LEVEL=0) turns the silencing off.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") == "0":
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in fds}
    null = os.open(os.devnull, os.O_WRONLY)
    for fd in fds:
        os.dup2(null, fd)
    try:
        yield
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(null)


def _import_quietly():
    with native_output_silenced():
        import tensorflow
        import tf_keras

        tensorflow.config.list_physical_devices("GPU")  # the CUDA probe logs on the first device query
        tensorflow.constant(0)  # and the eager context on its creation
    return tensorflow, tf_keras


tf, keras = _import_quietly()


def _check_keras2() -> None:
    module = getattr(tf.keras, "__name__", "")
    if not module.startswith("tf_keras"):
        raise TfpipeError(
            f"tf.keras resolves to {module or 'an unknown module'} (Keras 3), but tfpipe needs tf_keras "
            "(Keras 2) for quantization-aware training",
            "TensorFlow was imported and tf.keras used before tfpipe: import tfpipe first, "
            "or set TF_USE_LEGACY_KERAS=1 before starting Python",
        )


_check_keras2()


def tfmot():
    """tensorflow_model_optimization, imported on first use (it costs about two seconds)."""
    import tensorflow_model_optimization

    return tensorflow_model_optimization


def tfmot_quantize_configs():
    """tfmot's own QuantizeConfig classes (Default8BitOutputQuantizeConfig, NoOpQuantizeConfig),
    which its quantize_model uses internally; not exported by the public API, so imported from
    where they live in 0.8.1."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs,
    )

    return default_8bit_quantize_configs


__all__ = ["tf", "keras", "tfmot", "tfmot_quantize_configs", "native_output_silenced"]
