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

        # A multi-worker strategy configures the runtime's collective ops, which TensorFlow allows
        # only before the eager context exists, and importing tf_keras creates it.
        strategy = None
        if os.environ.pop(tfpipe.MULTIWORKER_SWITCH, ""):
            strategy = tensorflow.distribute.MultiWorkerMirroredStrategy()
        import tf_keras

        tensorflow.config.list_physical_devices("GPU")  # the CUDA probe logs on the first device query
        tensorflow.constant(0)  # and the eager context on its creation
    return tensorflow, tf_keras, strategy


tf, keras, multiworker_strategy = _import_quietly()


def keras_package() -> str:
    """The package tf.keras's Model comes from: "tf_keras" (Keras 2) or "keras" (Keras 3). The class,
    not tf.keras.__name__: importing keras-cv renames that module to "tensorflow.keras" while it
    still is tf_keras."""
    return getattr(getattr(tf.keras, "Model", None), "__module__", "").split(".")[0]


def _check_keras2() -> None:
    module = keras_package()
    if module != "tf_keras":
        raise TfpipeError(
            f"tf.keras resolves to {module or 'an unknown module'} (Keras 3), but tfpipe needs tf_keras "
            "(Keras 2) for quantization-aware training",
            "TensorFlow was imported and tf.keras used before tfpipe: import tfpipe first, "
            "or set TF_USE_LEGACY_KERAS=1 before starting Python",
        )


_check_keras2()


def _plain_grouped_convolution() -> None:
    """Run grouped convolutions on TensorFlow's own kernel instead of XLA, where that kernel has them.

    tf_keras sends every Conv2D with groups > 1 through `tf.function(jit_compile=True)`, because
    TensorFlow's CPU kernel once lacked groups. Its oneDNN kernel (the x86 default) has them, and
    XLA's CPU gradient of a grouped convolution is very slow: a ResNeXt-50 32x4d training step at
    batch 128, 32x32 took 15.7 s through XLA on this project's 2-core machine. The outputs are the
    same function; tests/unit/test_zoo.py compares the two paths. A one-time probe falls back to
    XLA where the plain kernel refuses groups, forward or backward: on some x86 CPUs (an AVX2-only
    AMD EPYC) the forward kernel has groups while Conv2DBackpropInput raises "Gradients for grouped
    convolutions are not supported on CPU".
    """
    import functools

    from tf_keras.src.layers.convolutional.base_conv import Conv

    through_xla = Conv._jit_compiled_convolution_op

    @functools.cache
    def plain_kernel_has_groups() -> bool:
        with tf.init_scope():  # eager, even while a tf.function is being traced
            x, kernel, strides = tf.ones([1, 3, 3, 4]), tf.ones([3, 3, 2, 4]), [1, 1, 1, 1]
            try:
                y = tf.nn.conv2d(x, kernel, 1, "SAME")
                # the two gradient kernels called as such: init_scope pauses any GradientTape
                tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=kernel, out_backprop=y,
                                               strides=strides, padding="SAME")
                tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(kernel), out_backprop=y,
                                                strides=strides, padding="SAME")
                return True
            except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.NotFoundError):
                return False

    def grouped_convolution(self, inputs, kernel):
        if plain_kernel_has_groups():
            return self.convolution_op(inputs, kernel)
        return through_xla(self, inputs, kernel)

    Conv._jit_compiled_convolution_op = grouped_convolution
    Conv._jit_compiled_convolution_op_through_xla = through_xla  # kept for the comparison test


_plain_grouped_convolution()


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
