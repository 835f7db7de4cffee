"""The one place TensorFlow, tf_keras and tensorflow-model-optimization are imported.

Every tfpipe module that needs them does `from tfpipe.backend import tf, keras`, so the Keras-2
guard below runs before any model is built.
"""

import os

import tfpipe  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from tfpipe.errors import TfpipeError


def _import_quietly():
    """Import TensorFlow and tf_keras with their native start-up logging (CUDA probing on a CPU
    machine, oneDNN notices) sent to /dev/null: it is written before absl logging starts, so
    TF_CPP_MIN_LOG_LEVEL cannot silence it. Python errors still surface; --debug shows it all."""
    quiet = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") != "0"
    if quiet:
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
    try:
        import tensorflow
        import tf_keras

        tensorflow.config.list_physical_devices("GPU")  # the CUDA probe logs on the first device query
        tensorflow.constant(0)  # and the eager context on its creation
    finally:
        if quiet:
            os.dup2(saved, 2)
            os.close(null)
            os.close(saved)
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


__all__ = ["tf", "keras", "tfmot"]
