"""What int8 changes inside the network, layer by layer: the float Keras model's activations next
to the int8 TFLite model's own intermediate tensors, on the same validation images.

The int8 file is run with every intermediate tensor kept (the runtime's builtin kernels), each
tensor dequantized with its own scale and zero point and matched to the Keras layer whose output
it holds through the converter's tensor names (a fused CONV_2D + BatchNorm + ReLU op's output is
the ReLU layer's). For every matched layer:

- SQNR (dB) of the int8 activations against the float ones;
- the share of float activations beyond the int8 tensor's range (clipped by quantization);
- the two distributions, histogrammed on the int8 tensor's own range;
- the overlap of the top-k images of each channel (the images that excite it most) under float
  and under int8: 1.0 means int8 picks the same images for what the channel detects.

The float side is the trained float model (train/model.keras), the int8 side the file a device
runs, so the view shows everything between the two: QAT's fine-tuning, folding and rounding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe.delegates.edgetpu import keras_layers
from tfpipe.explain.features import TopK, activation_model
from tfpipe.runtime.graph import read_graph
from tfpipe.runtime.model import TFLiteModel, image_input

BINS = 64


def matched_layers(model, tflite: Path) -> list[tuple[str, int]]:
    """(Keras layer name, tensor index) for each quantized intermediate tensor of the TFLite graph
    that holds a Keras layer's output (same name and shape), in the graph's execution order."""
    graph = read_graph(tflite)
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    shapes = {}
    for layer in model.layers:
        shape = layer.output_shape
        if isinstance(shape, tuple):
            shapes[layer.name] = tuple(shape[1:])
    matched, seen = [], set()
    for op in graph.ops:
        for tensor in graph.op_outputs(op):
            if tensor.constant or not tensor.quantized:
                continue
            names = [name for name in keras_layers(tensor.name) if name in shapes]
            if not names:
                continue
            layer = max(names, key=order.__getitem__)  # the fused op's value is its last layer's output
            if layer in seen or shapes[layer] != tuple(tensor.shape[1:]):
                continue
            seen.add(layer)
            matched.append((layer, tensor.index))
    return matched


class _Compare:
    """Running sums for one layer over batches of images."""

    def __init__(self, low: float, high: float, k: int):
        self.edges = np.linspace(low, high, BINS + 1)
        self.low, self.high = low, high
        self.k = k
        self.signal = self.noise = 0.0
        self.beyond = self.count = 0
        self.float_hist = np.zeros(BINS, np.int64)
        self.int8_hist = np.zeros(BINS, np.int64)
        self.top_float: TopK | None = None
        self.top_int8: TopK | None = None

    def add(self, reference: np.ndarray, quantized: np.ndarray, first_index: int) -> None:
        reference = reference.astype(np.float64)
        self.signal += float(np.sum(reference ** 2))
        self.noise += float(np.sum((reference - quantized) ** 2))
        self.beyond += int(np.count_nonzero((reference < self.low) | (reference > self.high)))
        self.count += reference.size
        self.float_hist += np.histogram(np.clip(reference, self.low, self.high), self.edges)[0]
        self.int8_hist += np.histogram(quantized, self.edges)[0]
        if self.top_float is None:
            self.top_float, self.top_int8 = TopK(self.k, reference.shape[-1]), TopK(self.k, reference.shape[-1])
        self.top_float.add(reference, first_index)
        self.top_int8.add(quantized, first_index)

    def row(self, layer: str) -> dict:
        overlaps = np.array([len(set(a) & set(b)) / self.k
                             for a, b in zip(self.top_float.images, self.top_int8.images, strict=True)])
        worst = int(overlaps.argmin())
        return {"layer": layer, "sqnr_db": 10 * np.log10(self.signal / self.noise) if self.noise else float("inf"),
                "clipped_share": self.beyond / self.count, "top_k_overlap": float(overlaps.mean()),
                "worst_channel": worst, "worst_channel_overlap": float(overlaps[worst]),
                "channels": len(overlaps), "range": [self.low, self.high], "edges": self.edges.tolist(),
                "float_hist": self.float_hist.tolist(), "int8_hist": self.int8_hist.tolist()}


def compare(model, tflite: Path, inputs: np.ndarray, k: int, batch_size: int = 16, progress=None) -> list[dict]:
    """One row per matched layer (see the module docstring), over all of `inputs` (preprocessed
    float images), in execution order."""
    matched = matched_layers(model, tflite)
    if not matched:
        return []
    int8 = TFLiteModel(str(tflite), keep_tensors=True)
    name = image_input(int8.inputs, tflite)
    details = {d["index"]: d for d in int8.interpreter.get_tensor_details()}
    probe = activation_model(model, [layer for layer, _ in matched])
    compared = {}
    for layer, index in matched:
        scale, zero_point = details[index]["quantization"]
        info = np.iinfo(details[index]["dtype"])  # the range int8 (or int16, uint8) can hold
        compared[layer] = _Compare(scale * (info.min - zero_point), scale * (info.max - zero_point), k)
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start : start + batch_size]
        references = probe(batch, training=False)
        references = references if isinstance(references, list) else [references]
        quantized = int8.tensors({name: batch}, [index for _, index in matched])
        for (layer, index), reference in zip(matched, references, strict=True):
            compared[layer].add(np.asarray(reference), quantized[index], start)
        if progress is not None:
            progress.update(min(start + batch_size, len(inputs)))
    return [compared[layer].row(layer) for layer, _ in matched]


def worst(rows: list[dict]) -> dict | None:
    """The layer whose channels' top-k images int8 changes most (lowest mean overlap; the lower
    SQNR breaks a tie)."""
    return min(rows, key=lambda r: (r["top_k_overlap"], r["sqnr_db"])) if rows else None
