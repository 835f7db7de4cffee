"""What int8 changes inside the network, layer by layer: the float Keras model's activations next
to the int8 TFLite model's own intermediate tensors, on the same validation images.

The int8 file is run with every intermediate tensor kept (the runtime's builtin kernels), each
tensor dequantized with its own scale and zero point and matched to the Keras layer whose output
it holds through the converter's tensor names (a fused CONV_2D + BatchNorm + ReLU op's output is
the ReLU layer's). For every matched layer:

- SQNR (dB) of the int8 activations against the float ones;
- the share of float activations beyond the int8 tensor's range (clipped by quantization);
- the two distributions, histogrammed on the int8 tensor's own range;
- the overlap of the top-k images of each channel (the images that excite it most, by their
  maximum over positions) under float and under int8, ties included (an image int8 ranks equal to
  its k-th counts: a sigmoid that int8 saturates at its top code ranks the most confident images
  equal, not differently): 1.0 means int8 picks the same images for what the channel detects.

The float side is the trained float model (train/model.keras), the int8 side the file a device
runs, so the view shows everything between the two: QAT's fine-tuning, folding and rounding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe.delegates.edgetpu import keras_layers
from tfpipe.explain.features import activation_model
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
        self.float_peaks: list[np.ndarray] = []  # [B, C] per batch: each image's maximum per channel
        self.int8_peaks: list[np.ndarray] = []

    def add(self, reference: np.ndarray, quantized: np.ndarray, first_index: int) -> None:
        reference = reference.astype(np.float64)
        self.signal += float(np.sum(reference ** 2))
        self.noise += float(np.sum((reference - quantized) ** 2))
        self.beyond += int(np.count_nonzero((reference < self.low) | (reference > self.high)))
        self.count += reference.size
        self.float_hist += np.histogram(np.clip(reference, self.low, self.high), self.edges)[0]
        self.int8_hist += np.histogram(quantized, self.edges)[0]
        channels = reference.shape[-1]
        self.float_peaks.append(reference.reshape(len(reference), -1, channels).max(axis=1))
        self.int8_peaks.append(quantized.reshape(len(quantized), -1, channels).max(axis=1))

    def overlaps(self) -> np.ndarray:
        """Per channel, the share of the float model's top-k images that int8 also ranks in its top
        k, ties included: an image whose int8 peak equals the k-th largest counts (int8 saturating
        the most confident images at its top code ranks them equal, not differently)."""
        reference, quantized = np.concatenate(self.float_peaks), np.concatenate(self.int8_peaks)
        k = min(self.k, len(reference))
        top = np.argsort(-reference, axis=0, kind="stable")[:k]  # [k, C]
        threshold = -np.sort(-quantized, axis=0)[k - 1]  # the int8 k-th largest per channel
        return np.mean(np.take_along_axis(quantized, top, axis=0) >= threshold, axis=0)

    def row(self, layer: str) -> dict:
        overlaps = self.overlaps()
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
