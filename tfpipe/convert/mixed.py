"""Mixed precision under an accuracy budget: `convert --engine litert --max-drop X`.

TFLiteConverter's selective int8 (convert/selective.py) knows one move: a tensor back to float.
The LiteRT Quantizer can give any op int16 activations too (with requantizing ops at the border),
so this search has two moves per suspect, cheapest first:

1. full int8, measured (held-out score, latency at one thread, size); within the budget: done;
2. the op that adds the most quantization noise (ranked below), together with the ops that read
   its output (otherwise the consumers' int8 inputs round it again), gets int16 activations, and
   then float instead, each measured; of the two the fastest within the budget stays, else the
   better score, and the next suspect follows, up to MAX_ROUNDS (selective's) suspects.

Every configuration visited is reported with its (score, latency, size); the Pareto front of them
is printed and the model kept is the fastest within the budget (then the smallest), timed again
side by side when several are (tfpipe.runtime.timing: one timing each is too noisy to choose by). Each keeps the
run's integer interface (convert.io_dtype) unless an int16 or float op sits at the graph's input or
output, which has no int8 tensor to give: that one has float I/O (its `io_dtype` says so; the
Edge TPU and NNAPI run neither int16 nor mixed float ops, so mixed precision is for CPU and GPU). Latency is
measured, never assumed: XNNPACK has no int16 kernels, so an int16 op falls back to the reference
kernels and can cost more than a float one.

Ranking: the float model runs the held-out images with every tensor kept, and each op of the int8
model is scored by the noise its own quantization adds: the float model's tensor for its output,
rounded to the op's int8 steps and clipped to its int8 range, against itself, as relative noise
power noise/signal of the median channel (as selective int8 ranks by the median channel's SQNR:
one channel with a large range leaves the others a few steps or none, which the whole tensor's
ratio hides). That is exactly what an int16 or float move cures, and it does not depend on what
reached the op: the difference of the int8 model's noise after and before an op did, and ranked
an ordinary layer of a noisy 2-epoch model above one that rounded every channel to zero (its
inputs' noise was already 0.35, its own could add at most 0.65). An op that keeps an input's
steps (RESHAPE, MAX_POOL_2D, CONCATENATION: reshaping and max commute with rounding) adds none,
so the producer ranks, not the ops that pass its steps on. Each row also carries the int8 model's
own SQNR at that tensor (everything upstream included). Works on any float .tflite: no Keras
model needed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tfpipe.convert.litert import Engine
from tfpipe.convert.selective import MAX_ROUNDS, consumers, within
from tfpipe.convert.tflite import with_io_type
from tfpipe.delegates.edgetpu import keras_layers
from tfpipe.runtime.graph import read_graph_bytes

MOVES = ("int16", "float")  # what a suspect may become, each measured
RANK_SAMPLES = 32  # held-out images the ranking runs (per-tensor noise settles quickly)
# Not suspects: the requantizing ops themselves, and ops whose int8 output range is fixed by TFLite
# (softmax and sigmoid: 1/256 steps over 0..1), which have nothing to calibrate; a probability
# near 0 would also make its channel's relative noise meaningless.
DESTROYED = 1e6  # relative noise power of a tensor that carries nothing (or NaN): the ceiling
NOT_RANKED = ("QUANTIZE", "DEQUANTIZE", "SOFTMAX", "LOGISTIC", "TANH")


def _tensors(data: bytes, inputs: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """The named tensors of the model over `inputs`, dequantized (builtin kernels, all kept)."""
    from tfpipe.runtime.model import TFLiteModel

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.tflite"
        path.write_bytes(data)
        model = TFLiteModel(str(path), keep_tensors=True)
        index = {d["name"]: d["index"] for d in model.interpreter.get_tensor_details()}
        wanted = [index[n] for n in names if n in index]
        values = model.tensors({next(iter(model.inputs)): inputs}, wanted)
    by_index = {i: n for n, i in index.items()}
    return {by_index[i]: v for i, v in values.items()}


def relative_noise(reference: np.ndarray, approximation: np.ndarray) -> float:
    """noise/signal power of the median live channel (last axis); DESTROYED for NaN or inf."""
    ref = reference.astype(np.float64).reshape(-1, reference.shape[-1])
    signal = np.mean(ref ** 2, axis=0)
    noise = np.mean((ref - approximation.astype(np.float64).reshape(ref.shape)) ** 2, axis=0)
    live = signal > 0
    ratio = float(np.median(noise[live] / signal[live])) if live.any() else 0.0
    # NaN or inf (a broken range) ranks as destroyed, never as an unordered key
    return ratio if np.isfinite(ratio) and ratio < DESTROYED else DESTROYED


def op_noise(float_model: bytes, quantized: bytes, inputs: np.ndarray) -> list[dict]:
    """Per quantized op (its first output has a float counterpart, one scale), in graph order:
    tensor, op, the int8 model's median-channel SQNR there in dB, and `added_noise`, the relative
    noise power the op's own output quantization adds (module docstring). `quantized` has float I/O."""
    from tfpipe.runtime.quant import dequantize, quantize

    graph = read_graph_bytes(quantized)
    float_names = {t.name for t in read_graph_bytes(float_model).tensors if not t.constant}
    outputs = [(op, graph.tensors[op.outputs[0]]) for op in graph.ops if op.outputs and op.kind not in NOT_RANKED]
    outputs = [(op, t) for op, t in outputs if len(t.scale) == 1 and t.name in float_names]
    names = sorted({t.name for _, t in outputs})
    reference, noisy = _tensors(float_model, inputs, names), _tensors(quantized, inputs, names)

    def keeps_input_steps(op, out) -> bool:
        steps = (out.scale, out.zero_point)
        return any((t.scale, t.zero_point) == steps for t in graph.op_inputs(op) if not t.constant)

    rows = []
    for op, out in outputs:
        if out.name not in reference or out.name not in noisy or reference[out.name].shape != noisy[out.name].shape:
            continue  # the tensor was not kept by one of the runs: nothing to compare
        float_tensor = reference[out.name]
        here = relative_noise(float_tensor, noisy[out.name])
        own = 0.0 if keeps_input_steps(op, out) else relative_noise(float_tensor, dequantize(
            quantize(float_tensor, out.numpy_dtype, out.scale[0], out.zero_point[0]), out.scale[0], out.zero_point[0]))
        rows.append({"tensor": out.name, "op": op.kind,
                     "sqnr_db": float(10 * np.log10(1 / here)) if here > 0 else float("inf"), "added_noise": own})
    return rows


def pareto(rows: list[dict]) -> list[dict]:
    """The visited configurations no other beats on score, latency and size at once."""
    def key(r: dict) -> tuple:  # larger is better in each
        return r["score"], -r["latency_ms"], -r["size_bytes"]

    def beats(a: dict, b: dict) -> bool:
        return all(x >= y for x, y in zip(key(a), key(b), strict=True)) and key(a) != key(b)

    return [r for r in rows if not any(beats(o, r) for o in rows if o is not r)]


def search(float_model: bytes, calibration, measure: Callable[[bytes], tuple[float, float]], inputs: np.ndarray,
           float_score: float, max_drop: float, io_dtype: str, moves: tuple[str, ...] = MOVES) -> tuple[bytes, dict]:
    """The mixed-precision int8 model within `max_drop` points of `float_score` (or the best found)
    and the report. `measure(bytes)` gives (held-out score, latency ms) of a model with the run's
    interface; `inputs` are the held-out images the ranking runs; `moves` the precisions a suspect
    may take (("float",) alone is TFLiteConverter's selective int8 on this engine)."""
    engine = Engine(float_model)
    visited: list[dict] = []
    models: list[bytes] = []

    def trial(precision: dict[str, str], move: str, plain: bytes | None = None) -> dict:
        plain = plain or engine.quantize("int8", calibration, precision)
        try:
            data, io = with_io_type(plain, io_dtype, io_dtype), io_dtype
        except ValueError:  # an int16 or float op at the input or output: no integer interface there
            data, io = plain, "float"
        score, latency = measure(data)
        row = {"move": move, "precision": dict(precision), "score": score, "drop_points": 100 * (float_score - score),
               "latency_ms": latency, "size_bytes": len(data), "io_dtype": io}
        models.append(data)
        visited.append(row)
        return row

    def better(rows: list[dict]) -> dict:
        """Within the budget: the fastest; else the best score (then the fastest)."""
        meeting = [r for r in rows if within(r["drop_points"], max_drop)]
        if meeting:
            return min(meeting, key=lambda r: (r["latency_ms"], r["size_bytes"]))
        return max(rows, key=lambda r: (r["score"], -r["latency_ms"]))

    full = engine.quantize("int8", calibration)  # float I/O: the ranking compares its tensors with the float model's
    current = trial({}, "full int8", full)
    graph = read_graph_bytes(full)
    ranking = sorted(op_noise(float_model, full, inputs[:RANK_SAMPLES]), key=lambda r: -r["added_noise"])
    for suspect in ranking[:MAX_ROUNDS]:
        if within(current["drop_points"], max_drop):
            break
        if current["precision"].get(suspect["tensor"], "int8") != "int8":
            continue  # already raised as a consumer of an earlier suspect
        group = [suspect["tensor"], *consumers(graph, suspect["tensor"])]
        layers = ", ".join(dict.fromkeys(keras_layers(name)[0] if keras_layers(name) else name for name in group))
        tried = [trial({**current["precision"], **dict.fromkeys(group, precision)}, f"{layers} -> {precision}")
                 for precision in moves]
        current = better(tried)
    meeting = [i for i, r in enumerate(visited) if within(r["drop_points"], max_drop)]
    if len(meeting) > 1:  # one timing each is noisy (identical files moved 30 % apart): time them side by side
        for i, ms in zip(meeting, _interleaved([models[i] for i in meeting], inputs[:1]), strict=True):
            visited[i]["interleaved_ms"] = ms
        chosen = min(meeting, key=lambda i: (visited[i]["interleaved_ms"], visited[i]["size_bytes"]))
    else:
        chosen = visited.index(better(visited))
    report = {"engine": "litert", "moves": list(moves), "max_drop_points": max_drop,
              "held_out_samples": int(len(inputs)), "float_score": float_score, "met": bool(meeting),
              "chosen": chosen, "visited": visited, "pareto_front": [visited.index(r) for r in pareto(visited)],
              "op_noise": ranking}
    return models[chosen], report


def _interleaved(candidates: list[bytes], sample: np.ndarray) -> list[float]:
    from tfpipe.runtime.timing import interleaved_latency

    with tempfile.TemporaryDirectory() as scratch:
        files = []
        for i, data in enumerate(candidates):
            files.append(Path(scratch) / f"candidate_{i}.tflite")
            files[-1].write_bytes(data)
        timed = interleaved_latency(files, sample, rounds=5, runs=30)
        return [timed[f] for f in files]


def describe(report: dict, metric: str) -> list[str]:
    """The visited configurations, Pareto front marked (*) and the kept one (>), as printed lines."""
    visited = report["visited"]
    lines = [f"Mixed precision (--max-drop {report['max_drop_points']:g}, LiteRT Quantizer) on "
             f"{report['held_out_samples']} held-out samples: float {metric} {report['float_score']:.4f}",
             f"     {metric:>8} {'pts':>6} {'ms':>7} {'KiB':>7} {'I/O':>5}  configuration"]
    for i, r in enumerate(visited):
        mark = (">" if i == report["chosen"] else " ") + ("*" if i in report["pareto_front"] else " ")
        raised = {p for p in r["precision"].values()}
        lines.append(f"  {mark} {r['score']:>8.4f} {-r['drop_points']:>+6.2f} {r['latency_ms']:>7.3f} "
                     f"{r['size_bytes'] / 1024:>7.0f} {r['io_dtype']:>5}  {r['move']}"
                     + (f" [{len(r['precision'])} ops raised: {', '.join(sorted(raised))}]" if r["precision"] else ""))
    lines.append("  (* Pareto front of score, latency, size; > kept: the fastest within the budget"
                 + ("" if report["met"] else "; none is, so the best score") + ")")
    return lines
