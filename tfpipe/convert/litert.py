"""The second quantization engine: Google's LiteRT Quantizer (`litert-quantizer` on PyPI, formerly
ai-edge-quantizer), which quantizes an already converted float .tflite by a recipe, with any
op's precision chosen by a regex over its output tensor's name. This module is the one place
that imports it.

It serves `convert --engine litert` (the run's fp32 file quantized instead of TFLiteConverter's
post-training quantization), `convert --tflite FILE` (a float .tflite tfpipe did not write) and the
mixed-precision search of `--max-drop` (convert/mixed.py), which needs per-op int16 activations
that TFLiteConverter cannot give.

What it adds to the library's output, and why:
- Inputs and outputs: its static recipes would quantize the graph's inputs and outputs in place
  (int8 tensors whose scale the user must read). The graph's I/O is left float here (its INPUT
  and OUTPUT virtual ops excluded) and then given the interface the run asks for (uint8, int8 or
  float) by TFLiteConverter's own helper, so both engines' files have the same contract.
- Buffers: it writes constants after the flatbuffer (offset buffers), which TensorFlow's
  flatbuffer tools cannot read; `inline_buffers` moves them back in (every model here is < 2 GB).
"""

from __future__ import annotations

import contextlib
import io as _io
import re

import numpy as np

from tfpipe.errors import TfpipeError

# the recipes behind each --quantize mode (names from litert_quantizer.recipe)
RECIPES = {"int8": "static_wi8_ai8", "int16x8": "static_wi8_ai16", "dynamic": "dynamic_wi8_afp32",
           "weight_int8": "weight_only_wi8_afp32"}
PRECISIONS = ("int8", "int16", "float")  # what a single op can be given in a static model


def _library():
    try:
        from litert_quantizer import algorithm_manager, qtyping, quantizer, recipe
    except ImportError as e:  # an install without it (it is a project dependency: pip install -e .)
        raise TfpipeError(f"--engine litert: the LiteRT Quantizer is not installed ({e})",
                          "pip install litert-quantizer==0.11.0 (make install does)") from None
    return quantizer, recipe, qtyping, algorithm_manager.AlgorithmName


def op_scope(tensor_name: str) -> str:
    """The recipe regex of the op whose first output is `tensor_name`: the library matches a regex
    against the op's output names joined by ';' with a trailing ';'."""
    return "^" + re.escape(tensor_name) + ";"


def calibration_feed(signature: dict, calibration: np.ndarray | dict[str, np.ndarray]) -> dict:
    """The library's calibration data: {signature key: [ {input name: one sample [1, ...]} ]}."""
    (key, sig), = signature.items()
    feeds = calibration if isinstance(calibration, dict) else {sig["inputs"][0]: calibration}
    if sorted(feeds) != sorted(sig["inputs"]):
        raise ValueError(f"calibration data for {sorted(feeds)}, the model takes {sorted(sig['inputs'])}")
    count = len(next(iter(feeds.values())))
    return {key: [{name: np.asarray(x[i: i + 1], np.float32) for name, x in feeds.items()} for i in range(count)]}


class Engine:
    """One float .tflite, calibrated once, quantized by any recipe with per-op precisions."""

    def __init__(self, float_model: bytes):
        from ai_edge_litert.interpreter import Interpreter

        self.float_model = bytes(float_model)
        signatures = Interpreter(model_content=self.float_model).get_signature_list()
        if len(signatures) != 1:
            raise TfpipeError(f"the float model has {len(signatures)} signatures ({', '.join(signatures) or 'none'})",
                              "give a model with exactly one signature (TFLiteConverter writes serving_default)")
        self.signature = signatures
        self._ranges = None  # calibration result of the static recipe: {tensor name: min/max}

    def _quantizer(self, mode: str, precision: dict[str, str] | None):
        quantizer, recipe, qtyping, algorithm = _library()
        q = quantizer.Quantizer(self.float_model, getattr(recipe, RECIPES[mode])())
        for io_op in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
            q.update_quantization_recipe(regex=".*", operation_name=io_op, algorithm_key=algorithm.NO_QUANTIZE)
        for tensor, kind in (precision or {}).items():  # later entries win over the recipe's '.*'
            if kind == "int16":
                q.add_static_config(op_scope(tensor), qtyping.TFLOperationName.ALL_SUPPORTED,
                                    activation_num_bits=16, weight_num_bits=8)
            elif kind == "float":
                q.update_quantization_recipe(regex=op_scope(tensor),
                                             operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                             algorithm_key=algorithm.NO_QUANTIZE)
            elif kind != "int8":
                raise ValueError(f"precision {kind!r} of {tensor}: use one of {PRECISIONS}")
        return q

    def calibrate(self, mode: str, calibration) -> None:
        """Activation ranges of every tensor, once: per-op precision changes reuse them (an int16
        or float op needs the same float tensors' ranges as int8)."""
        q = self._quantizer(mode, None)
        if q.need_calibration and self._ranges is None:
            if calibration is None:
                raise ValueError(f"{mode} needs calibration data")
            feed = calibration_feed(self.signature, calibration)
            with _quiet(), _library_failure("calibrate"):
                # one thread: its ranges are moving averages over the samples in order, and the same
                # calibration must give the same model
                self._ranges = q.calibrate(feed, num_threads=1)

    def quantize(self, mode: str, calibration=None, precision: dict[str, str] | None = None) -> bytes:
        """The quantized model (float I/O, buffers inline); `precision`: {op output tensor: int8 |
        int16 | float} for static modes."""
        self.calibrate(mode, calibration)
        q = self._quantizer(mode, precision)
        with _quiet(), _library_failure(f"quantize ({RECIPES[mode]})"):
            result = q.quantize(self._ranges if q.need_calibration else None, enable_progress_bar=False,
                                enable_progress_report=False)
        return inline_buffers(bytes(result.quantized_model))


@contextlib.contextmanager
def _library_failure(step: str):
    """The library failing on a model (an op or tensor its recipes do not handle) is a one-line
    error about that model, not a traceback."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - whatever the library raises, the user gets one line
        reason = " ".join(str(e).split())[:300] or type(e).__name__
        raise TfpipeError(f"the LiteRT Quantizer could not {step} this model: {reason}",
                          "quantize it with --engine converter from its Keras model, or keep it float") from e


@contextlib.contextmanager
def _quiet():
    """The library's tqdm bars and the interpreter's warnings go to stderr on every call: keep
    convert's output to its own lines (a failure still raises)."""
    with contextlib.redirect_stderr(_io.StringIO()):
        yield


def inline_buffers(data: bytes) -> bytes:
    """The same model with every constant inside the flatbuffer (the library appends large ones
    after it, which TensorFlow's tools, e.g. modify_model_io_type, cannot read)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    moved = False
    for buffer in model.buffers or []:
        if buffer.offset and buffer.offset > 1:
            buffer.data = np.frombuffer(data, np.uint8, count=buffer.size, offset=buffer.offset).copy()
            buffer.offset = buffer.size = 0
            moved = True
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)) if moved else data


def quantize(float_model: bytes, mode: str, calibration=None, io_dtype: str = "float", float_outputs: bool = False,
             precision: dict[str, str] | None = None) -> bytes:
    """`float_model` quantized in `mode` by the LiteRT Quantizer, with the interface `io_dtype`
    (integer I/O for int8 only; `float_outputs` keeps the outputs float, e.g. after a detector's
    post-processing op)."""
    from tfpipe.convert.tflite import with_io_type

    if mode not in RECIPES:
        raise TfpipeError(f"--engine litert --quantize {mode}: the LiteRT Quantizer has no recipe for {mode}",
                          f"use --quantize {' or '.join(RECIPES)}, or --engine converter")
    data = Engine(float_model).quantize(mode, calibration, precision)
    return with_io_type(data, io_dtype, "float" if float_outputs else io_dtype)
