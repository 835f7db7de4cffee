"""Interpreter backends, in order of preference: ai-edge-litert, tflite_runtime, tf.lite.

These are the only imports of the runtimes in tfpipe. tflite_runtime 2.14 needs numpy<2 and
crashes in a process that imported TensorFlow 2.21, so it is only ever loaded in a worker.
"""

from __future__ import annotations

import importlib

BACKENDS = ("litert", "tflite_runtime", "tf")
_MODULES = {"litert": "ai_edge_litert.interpreter", "tflite_runtime": "tflite_runtime.interpreter",
            "tf": "tensorflow.lite.python.interpreter"}


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
    raise RuntimeError("no TFLite runtime could be imported (" + "; ".join(errors) + ")")


def open_interpreter(path: str, backend: str = "auto", threads: int = 1, plain: bool = False):
    """(Interpreter, backend name). `plain` disables default delegates (XNNPACK), so the op list
    is the model's own graph rather than DELEGATE nodes."""
    module, name = interpreter_module(backend)
    kwargs = {"model_path": str(path), "num_threads": threads}
    if plain:
        kwargs["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return module.Interpreter(**kwargs), name
