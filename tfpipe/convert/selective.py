"""Quantization debugging and selective int8: which layers int8 hurts, and keeping them float.

`layer_errors` runs TensorFlow's QuantizationDebugger on held-out images: for every quantized op
it compares the int8 output with the float op computed on the same (dequantized) input, giving
RMSE in quantization steps (RMSE/scale: about 0.29 for plain rounding) and, per output channel,
the SQNR in dB. A layer is ranked by its median channel's SQNR: a tensor whose range is blown up
by one channel leaves the others a few steps or none, which per-tensor RMSE/scale does not show.

`select` is `--max-drop X`: full int8 first; while the task metric on the held-out split drops
more than X points below float, the worst-ranked tensor is kept float, that is its producer and
every consumer become denylisted nodes (a float tensor between int8 ops would be quantized again
at the consumer's input), and the model is converted again. It reports which layers stayed float
and what that costs in latency and size.

The held-out score is the task's (tfpipe.tasks), by the evaluator's metric functions
(tfpipe.metrics, pure NumPy), so the figures mean what they mean in parity.json.
"""

from __future__ import annotations

import csv
import io as _io
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tfpipe.backend import native_output_silenced, tf
from tfpipe.convert.tflite import TF_IO, representative_dataset, serving_function, variables_of, with_io_type
from tfpipe.delegates.edgetpu import keras_layers
from tfpipe.runtime import Worker
from tfpipe.runtime.graph import read_graph_bytes

MAX_ROUNDS = 5  # tensors kept float before giving up: past that, QAT is the better tool
DEBUG_SAMPLES = 32  # held-out images the debugger runs (per-layer statistics settle quickly)


def _median_channel_sqnr(float_outputs, quant_outputs, scale: float, zero_point: int) -> float:
    """SQNR in dB of the median output channel (last axis), float op output against int8 output."""
    reference = np.asarray(float_outputs[0], np.float64)
    quantized = (np.asarray(quant_outputs[0], np.float64) - zero_point) * scale
    axes = tuple(range(reference.ndim - 1))
    signal = np.mean(reference ** 2, axis=axes).reshape(-1)
    noise = np.mean((reference - quantized) ** 2, axis=axes).reshape(-1)
    live = signal > 0  # channels that are always zero carry nothing to lose
    if not live.any():
        return float("inf")
    return float(np.median(10 * np.log10(signal[live] / np.maximum(noise[live], 1e-30))))


def _converter(model, io_dtype: str, calibration: np.ndarray):
    """A full-integer converter for the debugger: the same serving function and variables as
    convert's own, so tensor names and statistics match the exported model. One per conversion: a
    concrete-function converter that has converted once fails the second time (TF 2.21)."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serving_function(model)], variables_of(model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset(calibration, model.input_names)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = TF_IO[io_dtype]
    return converter


def _debugger(converter, held_out: np.ndarray, denylist: list[str] | None = None):
    samples = held_out[:DEBUG_SAMPLES]
    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics={"sqnr_db": _median_channel_sqnr}, denylisted_nodes=denylist or None)
    with native_output_silenced((1, 2)):  # its feed is a list by position: fine for one image input
        return tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([samples[i: i + 1]] for i in range(len(samples))),
            debug_options=options)


def layer_errors(model, io_dtype: str, calibration: np.ndarray, held_out: np.ndarray) -> list[dict]:
    """Per quantized op, in graph order: op, tensor, Keras layers, scale, RMSE/scale, median-channel SQNR."""
    debugger = _debugger(_converter(model, io_dtype, calibration), held_out)
    with native_output_silenced((1, 2)):
        debugger.run()
    dump = _io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = []
    for row in csv.DictReader(_io.StringIO(dump.getvalue())):
        scale, tensor = float(row["scale"]), row["tensor_name"]
        rmse = float(np.sqrt(float(row["mean_squared_error"])))
        rows.append({"op": row["op_name"], "tensor": tensor, "keras_layers": keras_layers(tensor), "scale": scale,
                     "rmse_over_scale": rmse / scale, "sqnr_db": float(row["sqnr_db"])})
    return rows


def measure(data: bytes, score: Callable[[dict], float], inputs: np.ndarray) -> tuple[float, float]:
    """(held-out score, median latency in ms at one thread) of a .tflite given as bytes."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.tflite"
        path.write_bytes(data)
        with Worker(path, threads=1) as worker:
            outputs = worker.predict({next(iter(worker.inputs)): inputs})
            latency = float(np.median(worker.latency({next(iter(worker.inputs)): inputs[:1]}, 5, 50)) * 1000)
    return score(outputs), latency


def within(drop_points: float, max_drop: float) -> bool:
    # 25 of 5,000 images is 0.5 points exactly; float subtraction must not make it 0.50000001
    return round(drop_points, 9) <= max_drop


def consumers(graph, tensor_name: str) -> list[str]:
    """Output tensor names of the ops that read the tensor named `tensor_name`."""
    index = next((t.index for t in graph.tensors if t.name == tensor_name), None)
    return [graph.tensors[op.outputs[0]].name for op in graph.ops if index in op.inputs and op.outputs]


def select(model, score: Callable[[dict], float], io_dtype: str, calibration: np.ndarray, inputs: np.ndarray,
           float_score: float, max_drop: float, errors: list[dict] | None = None) -> tuple[bytes, dict]:
    """Full int8, then worst tensors kept float one at a time until the drop is at most `max_drop`
    points. `score` is the task's metric of a model's outputs on the held-out `inputs` (the task
    object's `held_out_score`). Returns the chosen model's bytes and the report (rounds, layers kept
    float, costs). `errors` is `layer_errors`' table when the caller has it already (--debug-quant)."""
    with native_output_silenced((1, 2)):
        full = _converter(model, io_dtype, calibration).convert()
    held_out, latency = measure(full, score, inputs)
    rounds = [{"kept_float": [], "score": held_out, "drop_points": 100 * (float_score - held_out),
               "latency_ms": latency, "size_bytes": len(full)}]
    errors = errors if errors is not None else layer_errors(model, io_dtype, calibration, inputs)
    ranking = sorted(errors, key=lambda r: r["sqnr_db"])
    graph = read_graph_bytes(full)
    denylist: list[str] = []
    data = full
    for suspect in ranking[:MAX_ROUNDS]:
        if within(rounds[-1]["drop_points"], max_drop):
            break
        if suspect["tensor"] in denylist:  # already float as a consumer of an earlier suspect
            continue
        for name in [suspect["tensor"], *consumers(graph, suspect["tensor"])]:
            if name not in denylist:
                denylist.append(name)
        with native_output_silenced((1, 2)):
            debugger = _debugger(_converter(model, io_dtype, calibration), inputs, denylist)
            # the debugger's model keeps float I/O whatever the converter asked
            data = with_io_type(debugger.get_nondebug_quantized_model(), io_dtype, io_dtype)
        held_out, latency = measure(data, score, inputs)
        rounds.append({"kept_float": list(denylist), "suspect": suspect, "score": held_out,
                       "drop_points": 100 * (float_score - held_out), "latency_ms": latency, "size_bytes": len(data)})
    met = within(rounds[-1]["drop_points"], max_drop)
    report = {
        "max_drop_points": max_drop, "held_out_samples": int(len(inputs)), "float_score": float_score,
        "met": met, "rounds": rounds,
        "kept_float_layers": sorted({layer for name in denylist for layer in keras_layers(name)}),
        "latency_ratio_vs_full_int8": rounds[-1]["latency_ms"] / rounds[0]["latency_ms"],
        "size_ratio_vs_full_int8": rounds[-1]["size_bytes"] / rounds[0]["size_bytes"],
        "layer_errors": ranking,
    }
    return data, report


def describe(report: dict, metric: str) -> list[str]:
    first, last = report["rounds"][0], report["rounds"][-1]
    lines = [f"Selective int8 (--max-drop {report['max_drop_points']:g}) on {report['held_out_samples']} held-out "
             f"samples: float {metric} {report['float_score']:.4f}, full int8 {first['score']:.4f} "
             f"({-first['drop_points']:+.2f} points)"]
    if len(report["rounds"]) > 1:
        lines.append(f"  kept float: {', '.join(report['kept_float_layers'])} ({len(last['kept_float'])} ops): "
                     f"{metric} {last['score']:.4f} ({-last['drop_points']:+.2f} points), latency x"
                     f"{report['latency_ratio_vs_full_int8']:.2f}, size x{report['size_ratio_vs_full_int8']:.2f} "
                     "against full int8")
    if not report["met"]:
        lines.append(f"  still {last['drop_points']:.2f} points down after keeping {MAX_ROUNDS} tensors float")
    return lines


def write_layer_errors(rows: list[dict], export: Path) -> list[Path]:
    """export/quant_debug_int8.csv (one row per quantized op, graph order) and its plot."""
    from tfpipe import io, plots

    table = _io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["index", "op", "keras_layers", "scale", "rmse_over_scale", "sqnr_db", "tensor"])
    for i, r in enumerate(rows):
        writer.writerow([i, r["op"], " ".join(r["keras_layers"]), f"{r['scale']:.6g}", f"{r['rmse_over_scale']:.4f}",
                         f"{r['sqnr_db']:.2f}", r["tensor"]])
    return [io.write_text(export / "quant_debug_int8.csv", table.getvalue()),
            plots.layer_errors(rows, export / "quant_debug_int8.png")]
