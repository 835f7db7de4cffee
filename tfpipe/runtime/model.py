"""A .tflite model behind its signature: named float inputs in, named float outputs out.

Inputs and outputs are addressed by the signature's names (never by tensor position, which
converters reorder). Integer tensors are quantized/dequantized with their own scale and zero point.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from tfpipe.runtime.backends import open_interpreter
from tfpipe.runtime.quant import dequantize, quantize

SIGNATURE = "serving_default"


def _describe(details: dict) -> dict:
    scale, zero_point = details["quantization"]
    return {"tensor": details["name"], "shape": [int(s) for s in details["shape"]],
            "dtype": np.dtype(details["dtype"]).name, "scale": float(scale), "zero_point": int(zero_point)}


def image_input(inputs: dict[str, dict], path, shape: tuple[int, ...] | list[int] | None = None) -> str:
    """The signature name of a model's one image input (`inputs` as TFLiteModel.inputs), checked
    against `shape` [H, W, C] when given: a model with other inputs is refused by name, never fed
    by position."""
    from tfpipe.errors import TfpipeError

    if len(inputs) != 1:
        raise TfpipeError(f"{path}: takes {len(inputs)} inputs ({', '.join(sorted(inputs))})",
                          "tfpipe runs models with one image input [1, H, W, C]")
    (name,) = inputs
    got = inputs[name]["shape"]
    if shape is not None and list(got[1:]) != list(shape):
        expected = [1, *(int(d) for d in shape)]
        raise TfpipeError(f"{path}: input {name!r} is {got}, the run's preprocess gives {expected}",
                          "convert the model for this run's model.input_size and model.channels, or evaluate "
                          "it with the config it was made for")
    return name


class TFLiteModel:
    def __init__(self, path: str, backend: str = "auto", threads: int = 1, reference_kernels: bool = False,
                 delegate: str | None = None, keep_tensors: bool = False):
        self.path = path
        self.interpreter, self.backend = open_interpreter(path, backend, threads, reference=reference_kernels,
                                                          delegate=delegate, keep_tensors=keep_tensors)
        self.reference_kernels = reference_kernels
        self.delegate = delegate
        signatures = self.interpreter.get_signature_list()
        if SIGNATURE not in signatures:
            raise ValueError(f"no '{SIGNATURE}' signature (found: {', '.join(signatures) or 'none'})")
        self.runner = self.interpreter.get_signature_runner(SIGNATURE)
        self.inputs = {k: _describe(v) for k, v in self.runner.get_input_details().items()}
        self.outputs = {k: _describe(v) for k, v in self.runner.get_output_details().items()}
        self.threads = threads

    def describe(self) -> dict:
        return {"path": self.path, "backend": self.backend, "threads": self.threads,
                "reference_kernels": self.reference_kernels, "delegate": self.delegate,
                "inputs": self.inputs, "outputs": self.outputs, "graph": graph_summary(self.path, self.backend)}

    def _quantized(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """All samples at once in the model's input dtypes (one numpy call, not one per image)."""
        return {name: quantize(inputs[name], spec["dtype"], spec["scale"], spec["zero_point"])
                for name, spec in self.inputs.items()}

    def predict(self, inputs: dict[str, np.ndarray],
                before_invoke: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
        """Run each of the N samples (batch-1 model) and return dequantized float32 [N, ...] outputs.
        `before_invoke(i)` is told which sample is about to run (to name it if the process dies)."""
        missing = set(self.inputs) - set(inputs)
        if missing:
            raise ValueError(f"missing inputs {sorted(missing)}; the model takes {sorted(self.inputs)}")
        quantized = self._quantized(inputs)
        n = len(next(iter(quantized.values())))
        collected: dict[str, list] = {name: [] for name in self.outputs}
        for i in range(n):
            if before_invoke is not None:
                before_invoke(i)
            raw = self.runner(**{name: x[i : i + 1] for name, x in quantized.items()})
            for name in self.outputs:
                collected[name].append(raw[name])
        return {name: dequantize(np.concatenate(collected[name]), spec["scale"], spec["zero_point"])
                for name, spec in self.outputs.items()}

    def tensors(self, inputs: dict[str, np.ndarray], indices: list[int]) -> dict[int, np.ndarray]:
        """The named intermediate tensors (graph indices) of each of the N samples, dequantized
        with each tensor's own scale and zero point: float32 [N, ...] per index. Needs a model
        opened with keep_tensors (otherwise the runtime reuses their memory)."""
        quantized = self._quantized(inputs)
        n = len(next(iter(quantized.values())))
        details = {d["index"]: d for d in self.interpreter.get_tensor_details()}
        collected: dict[int, list] = {i: [] for i in indices}
        for i in range(n):
            self.runner(**{name: x[i : i + 1] for name, x in quantized.items()})
            for index in indices:
                collected[index].append(self.interpreter.get_tensor(index))
        out = {}
        for index, values in collected.items():
            scale, zero_point = details[index]["quantization"]
            out[index] = dequantize(np.concatenate(values), scale, zero_point)
        return out

    def latency(self, inputs: dict[str, np.ndarray], warmup: int, runs: int) -> list[float]:
        """Seconds per invoke of the first sample, after `warmup` untimed invokes. An input given
        at exactly its declared shape is one sample as it is (a tensor without a batch axis, such
        as the proposals [32, 4] at an Edge TPU cut, has no first row to take)."""
        feed = {name: x if list(x.shape) == self.inputs[name]["shape"] else x[:1]
                for name, x in self._quantized(inputs).items()}
        for _ in range(warmup):
            self.runner(**feed)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self.runner(**feed)
            times.append(time.perf_counter() - start)
        return times


def graph_summary(path: str, backend: str = "auto") -> dict:
    """The model's own ops (no delegate rewriting) and the dtypes of its activation tensors."""
    interpreter, _ = open_interpreter(path, backend, 1, plain=True)
    ops = interpreter._get_ops_details()  # public API offers no op list; stable across the three runtimes
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    produced = {i for op in ops for i in op["outputs"] if i >= 0}
    inputs = {d["index"] for d in interpreter.get_input_details()}
    activation_dtypes = sorted({np.dtype(tensors[i]["dtype"]).name for i in produced | inputs if i in tensors})
    return {
        "ops": [op["op_name"] for op in ops],
        "activation_dtypes": activation_dtypes,
        # -1 in a shape signature marks a dimension only known at run time (dynamic shapes)
        "dynamic_tensors": sorted(t["name"] for t in tensors.values() if -1 in list(t["shape_signature"])),
    }
