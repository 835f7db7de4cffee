"""Interpreter backends, in order of preference: ai-edge-litert, tflite_runtime, tf.lite; and delegates.

These are the only imports of the runtimes in tfpipe. tflite_runtime 2.14 needs numpy<2 and
crashes in a process that imported TensorFlow 2.21, so it is only ever loaded in a worker.
"""

from __future__ import annotations

import ctypes
import importlib
import platform
import warnings

BACKENDS = ("litert", "tflite_runtime", "tf")
_MODULES = {"litert": "ai_edge_litert.interpreter", "tflite_runtime": "tflite_runtime.interpreter",
            "tf": "tensorflow.lite.python.interpreter"}

# Shared libraries behind the named delegates, per OS (as Coral and TFLite ship them).
DELEGATES = {
    "edgetpu": {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"},
    "gpu": {"Linux": "libtensorflowlite_gpu_delegate.so", "Darwin": "libtensorflowlite_gpu_delegate.dylib",
            "Windows": "tensorflowlite_gpu_delegate.dll"},
}
DELEGATE_HINTS = {
    "edgetpu": "install the Edge TPU runtime (libedgetpu1-std, https://coral.ai/software/#edgetpu-runtime) "
               "and plug in the accelerator",
    "gpu": "build or install the TFLite GPU delegate library and put it on the library path, "
           "or pass its file with --delegate PATH.so",
}


class DelegateError(RuntimeError):
    """A delegate library cannot be loaded (absent, wrong architecture, no device)."""


def delegate_library(delegate: str) -> str:
    """The library file for 'edgetpu' or 'gpu' on this OS; any other value is taken as a path."""
    return DELEGATES.get(delegate, {}).get(platform.system(), delegate)


class RuntimeUnavailable(ImportError):
    """The runtime package asked for (or every one, for auto) is not installed in the worker's Python."""


def interpreter_module(backend: str = "auto"):
    """(module exposing Interpreter/OpResolverType/load_delegate, backend name)."""
    order = BACKENDS if backend == "auto" else (backend,)
    errors = []
    for name in order:
        if name not in _MODULES:
            raise ValueError(f"unknown runtime backend {name!r}; use one of: auto, {', '.join(BACKENDS)}")
        try:
            return importlib.import_module(_MODULES[name]), name
        except ImportError as e:
            errors.append(f"{name}: {e}")
    raise RuntimeUnavailable("no TFLite runtime could be imported (" + "; ".join(errors) + ")")


def load_delegate(module, delegate: str):
    library = delegate_library(delegate)
    try:
        # the shared object first: a runtime's Delegate that fails half-built prints a traceback
        # from its __del__ (ai-edge-litert 2.3) on top of the error
        ctypes.CDLL(library)
        return module.load_delegate(library)
    except (ValueError, OSError) as e:  # the runtimes raise ValueError("Failed to load delegate from ...")
        reason = " ".join(str(e).split())
        raise DelegateError(f"cannot load {library}: {reason}") from None


def open_interpreter(path: str, backend: str = "auto", threads: int = 1, plain: bool = False,
                     delegate: str | None = None, keep_tensors: bool = False, reference: bool = False):
    """(Interpreter, backend name). `plain` disables default delegates (XNNPACK), so the op list
    is the model's own graph rather than DELEGATE nodes. `reference`: TFLite's reference kernels
    (portable integer code, no CPU-specific paths), the closest across runtime versions: measured
    on 5,120 inputs of two MobileNets, tflite-runtime 2.14 and ai-edge-litert 2.3 differ on 0.2 %
    of samples by at most 2 output steps (FULLY_CONNECTED requantizes one step apart), against 5
    steps for the optimized builtin kernels and 55 for XNNPACK. `delegate`: 'edgetpu', 'gpu' or a
    library path. `keep_tensors`: every intermediate tensor stays readable after an invoke
    (the runtime then runs its builtin kernels, without default delegates)."""
    module, name = interpreter_module(backend)
    kwargs = {"model_path": str(path), "num_threads": threads}
    if reference:
        kwargs["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_REF
    elif plain or keep_tensors:  # a delegate computes inside itself: its intermediate tensors stay unwritten
        kwargs["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if keep_tensors:
        kwargs["experimental_preserve_all_tensors"] = True
    if delegate:
        kwargs["experimental_delegates"] = [load_delegate(module, delegate)]
    with warnings.catch_warnings():  # ai-edge-litert warns that keep_tensors is for debugging: it is
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        return module.Interpreter(**kwargs), name
