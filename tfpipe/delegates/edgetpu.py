"""Edge TPU: which ops the compiler will map, and where it will cut the graph.

A static prediction from Coral's documented model requirements and supported-op table
(coral.ai/docs/edgetpu/models-intro, "Model requirements" and "Supported operations", compiler 16):

- every tensor is 8-bit quantized (int8/uint8; constant int32 biases and shape operands allowed);
- tensor sizes are constant at compile time (no dynamic dimension);
- tensors have at most 3 dimensions larger than 1, the innermost ones (so batch 1);
- only the table's ops, within their stated limits;
- the compiler partitions once: the first op it cannot map, and every op after it in execution
  order, runs on the CPU, even ops the Edge TPU supports.

Where Coral documents a limit without numbers, the rule below says so and cites what users of
compiler 16 reported; those are the rules most worth checking against the real compiler, which
`check()` runs whenever `edgetpu_compiler` is on PATH and reports next to the prediction.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tfpipe.runtime.graph import Graph, Op, Tensor, read_graph

MAPPED = "Mapped to Edge TPU"
NOT_SUPPORTED = "Operation not supported"
LIMITATION = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
AFTER_CUT = "More than one subgraph is not supported"
EIGHT_BIT = ("INT8", "UINT8")

# Empirical: Coral says only that resizes "might not be mapped" depending on size. With compiler 16,
# 128x128 outputs were reported mapped and 256x256 / 512x512 ones not (google-coral/edgetpu#31, #187).
MAX_RESIZE_PIXELS = 128 * 128
# Coral documents no activation size limit, yet the compiler refuses whole models with "Compilation
# failed due to large activation tensors in model" (google-coral/edgetpu#176: a 512x512x151 output,
# "too large to fit on the edgetpu's RAM"; #439, #449, #512). The one memory figure Coral gives is
# the roughly 8 MB of on-chip SRAM (coral.ai/docs/edgetpu/compiler, "Parameter data caching"): an
# activation larger than all of it is warned about, not predicted as a cut (the compiler fails the
# whole compilation rather than cutting, and smaller models have failed too).
ON_CHIP_BYTES = 8 * 2**20
SOFTMAX_MAX_ELEMENTS = 16_000


def _fused(op: Op) -> str | None:
    return "a fused activation function" if op.options.get("fusedActivationFunction", 0) else None


def _axes(graph: Graph, op: Op, position: int, data: int = 0) -> list[int] | None:
    """The constant axes operand at `position`, normalised against the rank of input `data`."""
    tensor = graph.tensors[op.inputs[position]]
    if tensor.value is None:
        return None
    rank = len(graph.tensors[op.inputs[data]].shape)
    return sorted({int(a) % rank for a in np.ravel(tensor.value)})


def _batch_axis(what: str, position: int = 1, data: int = 0) -> Callable[[Graph, Op], str | None]:
    def rule(graph: Graph, op: Op) -> str | None:
        axes = _axes(graph, op, position, data)
        return f"{what} along the batch dimension" if axes is None or 0 in axes else None
    return rule


def _mean(graph: Graph, op: Op) -> str | None:
    axes, x = _axes(graph, op, 1), graph.tensors[op.inputs[0]]
    if axes is None or 0 in axes:
        return "a reduction along the batch dimension"
    if len(x.shape) - 1 in axes and x.shape[-1] % 4:
        return f"a reduction over {x.shape[-1]} channels (a z-reduction needs a multiple of 4)"
    return None


def _conv(graph: Graph, op: Op) -> str | None:
    x, weights = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if op.kind == "CONV_2D" and weights.shape[-1] != x.shape[-1]:
        # TFLite's grouped CONV_2D came after compiler 16, and Coral's table does not list it
        return f"{x.shape[-1] // weights.shape[-1]} groups (grouped convolution)"
    h, w = op.options.get("dilationHFactor", 1), op.options.get("dilationWFactor", 1)
    return f"dilation {h}x{w} (x and y must match)" if h != w else None


def _concatenation(graph: Graph, op: Op) -> str | None:
    constants = [t for t in graph.op_inputs(op) if t.constant]
    if constants and (len(op.inputs) != 2 or any(np.any(t.value) for t in constants)):
        return "a constant input that is not a zero pad between exactly 2 inputs"
    return _fused(op)


def _fully_connected(graph: Graph, op: Op) -> str | None:
    if op.options.get("weightsFormat", 0) != 0:
        return "shuffled fully-connected weights (only the default format)"
    out = graph.tensors[op.outputs[0]]
    return f"output {list(out.shape)} (must be one-dimensional)" if sum(d > 1 for d in out.shape[:-1]) else None


def _pad(graph: Graph, op: Op) -> str | None:
    paddings = graph.tensors[op.inputs[1]].value
    return "padding along the batch dimension" if paddings is None or np.any(paddings[0]) else None


def _prelu(graph: Graph, op: Op) -> str | None:
    alpha = graph.tensors[op.inputs[1]]
    return (f"alpha of shape {list(alpha.shape)} (only its innermost dimension may exceed 1: "
            "Keras PReLU(shared_axes=[1, 2]))") if sum(d > 1 for d in alpha.shape[:-1]) else None


def _resize(graph: Graph, op: Op) -> str | None:
    out = graph.tensors[op.outputs[0]]
    h, w = out.shape[1:3]
    if h * w > MAX_RESIZE_PIXELS:
        return (f"a {h}x{w} output: larger than the {int(MAX_RESIZE_PIXELS ** 0.5)}x{int(MAX_RESIZE_PIXELS ** 0.5)} "
                "reported to map (Coral: 'depending on input/output size ... may not be mapped')")
    return None


def _softmax(graph: Graph, op: Op) -> str | None:
    x = graph.tensors[op.inputs[0]]
    size = int(np.prod(x.shape))
    if sum(d > 1 for d in x.shape) > 1 or size > SOFTMAX_MAX_ELEMENTS:
        return f"input {list(x.shape)} (only a 1-D input of at most {SOFTMAX_MAX_ELEMENTS:,} elements)"
    return None


def _strided_slice(graph: Graph, op: Op) -> str | None:
    strides = graph.tensors[op.inputs[3]].value
    if strides is None or np.any(strides != 1):
        return "strides other than 1"
    if op.options.get("ellipsisMask", 0) or op.options.get("newAxisMask", 0):
        return "an ellipsis or new-axis mask"
    return None


def _pack(graph: Graph, op: Op) -> str | None:
    return "packing along the batch dimension" if op.options.get("axis", 0) == 0 else None


def _split(graph: Graph, op: Op) -> str | None:
    return _batch_axis("splitting", position=0, data=1)(graph, op)  # SPLIT's inputs: axis, then data


def _transpose(graph: Graph, op: Op) -> str | None:
    # Listed since compiler 16, yet reported unmapped with exactly this status for ordinary
    # permutations (google-coral/edgetpu#433): predicted as a cut, conservatively.
    return "a transpose (listed since compiler 16, reported unmapped in practice: edgetpu#433)"


# Coral's table: op -> its documented limit (None: no limit beyond the model requirements).
SUPPORTED: dict[str, Callable[[Graph, Op], str | None] | None] = {
    "ADD": None, "AVERAGE_POOL_2D": lambda g, op: _fused(op), "CONCATENATION": _concatenation, "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _conv, "EXPAND_DIMS": None, "FULLY_CONNECTED": _fully_connected, "L2_NORMALIZATION": None,
    "LOGISTIC": None, "LSTM": None, "UNIDIRECTIONAL_SEQUENCE_LSTM": None, "MAXIMUM": None,
    "MAX_POOL_2D": lambda g, op: _fused(op), "MEAN": _mean, "MINIMUM": None, "MUL": None, "PACK": _pack, "PAD": _pad,
    "PRELU": _prelu, "QUANTIZE": None, "REDUCE_MAX": _batch_axis("a reduction"),
    "REDUCE_MIN": _batch_axis("a reduction"), "RELU": None, "RELU6": None, "RELU_N1_TO_1": None, "RESHAPE": None,
    "RESIZE_BILINEAR": _resize, "RESIZE_NEAREST_NEIGHBOR": _resize, "RSQRT": None, "SLICE": None,
    "SOFTMAX": _softmax, "SPACE_TO_DEPTH": None, "SPLIT": _split, "SQUEEZE": None, "STRIDED_SLICE": _strided_slice,
    "SUB": None, "SUM": _batch_axis("a reduction"), "SQUARED_DIFFERENCE": None, "TANH": None,
    "TRANSPOSE": _transpose, "TRANSPOSE_CONV": None,
}

# What to change in the Keras model, by the op that stops the mapping.
REWRITES = {
    "CONV_2D": "use the same dilation in x and y; split a grouped convolution into per-group Conv2D layers "
               "joined by Concatenate (all map)",
    "TRANSPOSE": "keep tensors NHWC end to end: fold the permutation into the next layer's weights, or express "
                 "a channel shuffle as a 1x1 convolution with a fixed permutation matrix",
    "RESHAPE": "keep every tensor at batch 1 and at most 3 dimensions larger than 1 (no 5-D views for grouped "
               "ops: use grouped Conv2D or split/concatenate along channels)",
    "RESIZE_BILINEAR": "upsample in smaller steps (2x UpSampling2D stages between convolutions), or run the last, "
                       "full-resolution upsample on the CPU after the argmax",
    "RESIZE_NEAREST_NEIGHBOR": "upsample in smaller steps, or run the last full-resolution upsample on the CPU",
    "SOFTMAX": "leave the per-pixel softmax off the device graph: the argmax of the logits gives the same classes "
               "(convert.class_map), or apply softmax on the CPU",
    "LEAKY_RELU": "use PReLU(shared_axes=[1, 2]) initialised to the slope, or Maximum(x, slope * x): both map",
    "HARD_SWISH": "use ReLU6, or x * ReLU6(x + 3) / 6 built from Add, ReLU6 and Mul",
    "DEPTH_TO_SPACE": "upsample with Conv2DTranspose (TRANSPOSE_CONV) or UpSampling2D followed by Conv2D",
    "ARG_MAX": "nothing to do if it is the last op: the CPU takes the argmax over the Edge TPU's output",
    "CAST": "nothing to do if it is the last op; otherwise keep the graph in 8-bit types",
    "DEQUANTIZE": "convert with integer input/output (--quantize int8 --io-dtype uint8) so no float tensor remains",
    "EQUAL": "max-unpooling by comparison (EQUAL, SELECT) does not map: upsample with UpSampling2D + Conv2D or "
             "Conv2DTranspose instead",
    "SELECT_V2": "max-unpooling by comparison does not map: upsample with UpSampling2D + Conv2D or Conv2DTranspose",
    "GATHER": "replace the gather by a slice or a 1x1 convolution with a fixed selection matrix",
    "TFLite_Detection_PostProcess": "nothing to do: detection post-processing always runs on the CPU, after the "
                                     "Edge TPU graph",
}
FLOAT_REWRITE = "convert to full integer: --quantize int8 (or --target edgetpu)"
DYNAMIC_REWRITE = "convert with a fixed batch of 1 and static shapes (tfpipe's converter does both)"


def _short(tensor: Tensor) -> str:
    return tensor.name.split(";")[0]  # the converter joins the names of everything it fused


def _tensor_problem(tensor: Tensor) -> tuple[str, str] | None:
    """A model requirement a tensor breaks: (reason, rewrite), or None."""
    if tensor.dynamic:
        return f"tensor {_short(tensor)!r} has a dynamic shape {list(tensor.signature)}", DYNAMIC_REWRITE
    if tensor.constant:  # weights and operands: the layout rules are about activations
        return None
    large = [d for d in tensor.shape[:-3] if d > 1]
    if large:
        return (f"tensor {_short(tensor)!r} of shape {list(tensor.shape)}: only the 3 innermost dimensions may "
                "exceed 1", REWRITES["RESHAPE"])
    if tensor.dtype not in EIGHT_BIT:
        return f"tensor {_short(tensor)!r} is {tensor.dtype.lower()}, not 8-bit quantized", FLOAT_REWRITE
    return None


def op_verdict(graph: Graph, op: Op) -> tuple[str, str | None, str | None]:
    """(status in the compiler's words, reason, rewrite) for one op taken on its own."""
    if op.kind == "DEQUANTIZE" and not set(op.outputs) <= set(graph.outputs):
        # mid-graph: float kernels follow (a model converted with float fallback), not a float output
        after = sorted({o.kind for o in graph.ops if set(o.inputs) & set(op.outputs)})
        return (NOT_SUPPORTED, f"DEQUANTIZE is not in the Edge TPU's op table: it hands a float tensor to "
                               f"{', '.join(after)}, computed in float (no integer kernel in this model)",
                "the Edge TPU maps only up to the first float op: keep float computation at the end of the graph "
                "or replace it with integer ops")
    if op.kind not in SUPPORTED:
        return NOT_SUPPORTED, f"{op.kind} is not in the Edge TPU's op table", REWRITES.get(op.kind)
    for tensor in graph.op_inputs(op) + graph.op_outputs(op):
        problem = _tensor_problem(tensor)
        if problem:
            return LIMITATION, *problem
    rule = SUPPORTED[op.kind]
    limit = rule(graph, op) if rule else None
    if limit:
        return LIMITATION, f"{op.kind} with {limit}", REWRITES.get(op.kind)
    return MAPPED, None, None


def keras_layers(tensor_name: str) -> list[str]:
    """The Keras layers a TFLite tensor name points to ('model/quant_conv/Conv2D;...'), the op's own
    layer first (the converter lists fused activations before the convolution they follow)."""
    layers = []
    for part in reversed(tensor_name.split(";")):
        if "FakeQuant" in part or "Quantize" in part:  # the previous layer's output quantizer, folded in
            continue
        pieces = part.split("/")
        if len(pieces) >= 3:  # model scope / layer / TF op
            layer = pieces[1].removeprefix("quant_")
            if layer not in layers:
                layers.append(layer)
    return layers


def predict(graph: Graph) -> dict:
    """The static prediction for a whole graph."""
    per_op, first = [], None
    for op in graph.ops:
        status, reason, rewrite = op_verdict(graph, op)
        if first is None and status != MAPPED:
            name = graph.tensors[op.outputs[0]].name if op.outputs else ""
            first = {"index": op.index, "op": op.kind, "status": status, "reason": reason,
                     "keras_layers": keras_layers(name), "tensor": name, "rewrite": rewrite}
        mapped = first is None  # one partition: nothing after the first unmapped op is mapped
        per_op.append({"index": op.index, "op": op.kind, "mapped": mapped,
                       "status": MAPPED if mapped else (AFTER_CUT if status == MAPPED else status),
                       "reason": reason, "macs": graph.multiply_adds(op)})
    quantized = any(t.quantized and not t.constant for t in graph.tensors)
    if not quantized:  # the compiler refuses the file outright
        first = {"index": 0, "op": graph.ops[0].kind if graph.ops else "", "status": NOT_SUPPORTED,
                 "reason": "the model is not 8-bit quantized: the compiler rejects it", "keras_layers": [],
                 "tensor": "", "rewrite": FLOAT_REWRITE}
        for row in per_op:
            row.update(mapped=False, status=NOT_SUPPORTED)
    mapped_ops = sum(row["mapped"] for row in per_op)
    on_tpu = {t for row, op in zip(per_op, graph.ops, strict=True) if row["mapped"]
              for t in (*op.inputs, *op.outputs) if t >= 0}
    activations = [graph.tensors[t] for t in on_tpu if not graph.tensors[t].constant]
    largest = max(activations, key=lambda t: int(np.prod(t.shape)), default=None)
    largest_bytes = int(np.prod(largest.shape)) if largest is not None else 0  # 8-bit: a byte per element
    macs = sum(row["macs"] for row in per_op)
    mapped_macs = sum(row["macs"] for row in per_op if row["mapped"])
    return {
        "compilable": quantized,
        "requirements": {
            "quantized": quantized,
            "static_shapes": not any(t.dynamic for t in graph.tensors),
            "at_most_3_dims_above_1": not any(d > 1 for t in graph.tensors if not t.constant for d in t.shape[:-3]),
        },
        "ops": {"total": len(per_op), "mapped": mapped_ops, "share": mapped_ops / len(per_op) if per_op else 0.0},
        "macs": {"total": macs, "mapped": mapped_macs, "share": mapped_macs / macs if macs else 0.0},
        "first_unmapped": first,
        "largest_activation": None if largest is None else {
            "tensor": largest.name, "shape": list(largest.shape), "bytes": largest_bytes,
            "over_on_chip_memory": largest_bytes > ON_CHIP_BYTES},
        "before_postprocess": _before_postprocess(graph, per_op),
        "operators": operator_table(per_op),
        "per_op": per_op,
    }


POSTPROCESS = "TFLite_Detection_PostProcess"
# The ops a device graph may end in that run on the CPU after the Edge TPU by design: a detector's
# post-processing op, a segmenter's class map (ARG_MAX, then CAST to uint8). The tail also takes the
# DEQUANTIZEs that only feed it.
TAIL_HEADS = (POSTPROCESS, "ARG_MAX")
TAIL_KINDS = (*TAIL_HEADS, "CAST", "DEQUANTIZE")


def _before_postprocess(graph: Graph, per_op: list[dict]) -> dict | None:
    """For a graph ending in TFLite_Detection_PostProcess or a class map's ARG_MAX, the ops before
    that tail: it runs on the CPU in every Edge TPU detector or segmenter (neither op is in the
    Edge TPU's table), so what counts is whether everything before it maps. None otherwise."""
    start = len(graph.ops)
    tail_inputs: set[int] = set(graph.outputs)
    while start > 0 and graph.ops[start - 1].kind in TAIL_KINDS and set(graph.ops[start - 1].outputs) <= tail_inputs:
        start -= 1
        tail_inputs |= set(graph.ops[start].inputs)
    tail = [op.kind for op in graph.ops[start:]]
    if not any(kind in TAIL_HEADS for kind in tail):
        return None
    mapped = sum(row["mapped"] for row in per_op[:start])
    return {"total": start, "mapped": mapped, "share": mapped / start if start else 0.0, "cpu_tail": tail,
            "tail": "the post-processing op" if POSTPROCESS in tail else "the class map's argmax"}


def cpu_part(graph: Graph, report: dict) -> tuple[list[int], list[int], list[int]]:
    """(ops, input tensors, output tensors) of what runs on the CPU after the compiler's cut: every
    op from the first one not mapped on, in execution order (report: `predict(graph)`). Inputs are
    the activations those ops read from the Edge TPU's part (or the graph's inputs); nothing when
    everything maps."""
    ops = [row["index"] for row in report["per_op"] if not row["mapped"]]
    produced = {t for i in ops for t in graph.ops[i].outputs}
    inputs = list(dict.fromkeys(t for i in ops for t in graph.ops[i].inputs
                                if t >= 0 and t not in produced and not graph.tensors[t].constant))
    return ops, inputs, [t for t in graph.outputs if t in produced]


def cpu_part_latency(path: Path, images: np.ndarray, threads: int = 1, runs: int = 20) -> dict:
    """Milliseconds per image of the ops that run on the CPU after the Edge TPU's cut, measured on
    this machine: that part, cut out of the file (runtime/graph.part_bytes), is fed what the whole
    model computes at the cut for each of `images` (preprocessed [N, H, W, C]; a detector's
    post-processing time depends on how many boxes pass its score threshold, so real images, not
    noise) and timed in its own runtime worker; the median over images of each image's median.
    {"ms", "ops" (their kinds), "images"}; ms is 0.0 when everything maps."""
    from tfpipe.runtime.client import Worker
    from tfpipe.runtime.graph import part_bytes
    from tfpipe.runtime.model import TFLiteModel, image_input

    graph = read_graph(path)
    ops, inputs, outputs = cpu_part(graph, predict(graph))
    if not ops:
        return {"ms": 0.0, "ops": [], "images": 0}
    whole = TFLiteModel(str(path), keep_tensors=True)
    reached = whole.tensors({image_input(whole.inputs, path, images.shape[1:]): images}, inputs)
    with tempfile.TemporaryDirectory() as scratch:
        part = Path(scratch) / "cpu_part.tflite"
        part.write_bytes(part_bytes(path, ops, inputs, outputs))
        with Worker(part, threads=threads) as worker:
            per_image = []
            for i in range(len(images)):
                # each image's own tensor: one at the cut need not lead with a batch axis (Faster
                # R-CNN's proposals [32, 4]), so reached[t] is N of them end to end
                feed = {f"tensor_{t}": reached[t].reshape(len(images), *graph.tensors[t].shape)[i] for t in inputs}
                per_image.append(float(np.median(worker.latency(feed, 3, runs))) * 1000)
    return {"ms": float(np.median(per_image)), "ops": [graph.ops[i].kind for i in ops], "images": len(images)}


def operator_table(per_op: list[dict]) -> list[dict]:
    """Op counts by (op, status), in the layout of the compiler's `-s` log, for side-by-side reading."""
    counts = Counter((row["op"], row["status"]) for row in per_op)
    return [{"op": op, "count": n, "status": status} for (op, status), n in counts.items()]


_LOG_ROW = re.compile(r"^([A-Z][A-Z0-9_]+|TFLite_\w+)\s+(\d+)\s+(\S.*?)\s*$")


def parse_compiler_log(text: str) -> dict:
    """What `edgetpu_compiler -s` printed: version, mapped and CPU op counts, the operator table."""
    version = re.search(r"Edge TPU Compiler version (\S+)", text)
    on_tpu = re.search(r"Number of operations that will run on Edge TPU: (\d+)", text)
    on_cpu = re.search(r"Number of operations that will run on CPU: (\d+)", text)
    total = re.search(r"Total number of operations: (\d+)", text)
    rows, table = [], False
    for line in text.splitlines():
        if line.startswith("Operator") and "Status" in line:
            table = True
            continue
        match = _LOG_ROW.match(line) if table else None
        if match:
            rows.append({"op": match[1], "count": int(match[2]), "status": match[3]})
    total_ops = int(total[1]) if total else sum(r["count"] for r in rows)
    mapped = int(on_tpu[1]) if on_tpu else (total_ops if rows and all(r["status"] == MAPPED for r in rows) else None)
    return {"version": version[1] if version else None, "mapped": mapped,
            "cpu": int(on_cpu[1]) if on_cpu else (total_ops - mapped if mapped is not None else None),
            "total": total_ops, "operators": rows,
            "failed": "Compilation failed" in text or "ERROR" in text}


def run_compiler(path: Path, compiler: str) -> dict:
    """`edgetpu_compiler -s` on the model, into a scratch directory; its log parsed."""
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run([compiler, "-s", "-o", out, str(path)], capture_output=True, text=True, timeout=600)
        compiled = sorted(Path(out).glob("*_edgetpu.tflite"))
        if compiled:  # kept beside the model: model_int8_edgetpu.tflite, the design's name
            shutil.copyfile(compiled[0], path.with_name(path.stem + "_edgetpu.tflite"))
    result = parse_compiler_log(proc.stdout + proc.stderr)
    result["exit"] = proc.returncode
    return result


def check(path: Path) -> dict:
    """The prediction, plus the compiler's own verdict when `edgetpu_compiler` is installed."""
    graph = read_graph(path)
    report = predict(graph)
    compiler = shutil.which("edgetpu_compiler")
    report["compiler"] = None
    if compiler:
        actual = run_compiler(path, compiler)
        actual["agrees"] = actual["mapped"] == report["ops"]["mapped"]
        report["compiler"] = actual
    return report


def percent(share: float, decimals: int = 1) -> str:
    """A share as a percentage that reads 100 only when it is whole: 99.95 % of the MACs mapped is
    a graph with a cut, and rounding it to 100.0 % hid that (FCN-8s' CPU build)."""
    text = f"{share:.{decimals}%}"
    return f"{100 - 10 ** -decimals:.{decimals}f}%" if share < 1 and float(text[:-1]) >= 100 else text


def summary_lines(report: dict) -> list[str]:
    ops, macs, first = report["ops"], report["macs"], report["first_unmapped"]
    lines = [f"Edge TPU (predicted): {ops['mapped']}/{ops['total']} ops mapped ({percent(ops['share'], 0)}), "
             f"{percent(macs['share'])} of {macs['total'] / 1e6:.1f}M MACs"]
    before = report.get("before_postprocess")
    if before:
        lines.append(f"  before {before['tail']}: {before['mapped']}/{before['total']} ops mapped "
                     f"({percent(before['share'], 0)}); {', '.join(before['cpu_tail'])} run on the CPU, as in every "
                     "Edge TPU " + ("detector" if POSTPROCESS in before["cpu_tail"] else "segmenter"))
    if first and not (before and first["index"] >= before["total"]):
        layer = f" (Keras layer {', '.join(first['keras_layers'])})" if first["keras_layers"] else ""
        lines.append(f"  graph cut at op {first['index']} {first['op']}{layer}: {first['reason']}")
        if first["rewrite"]:
            lines.append(f"  rewrite: {first['rewrite']}")
    largest = report.get("largest_activation")
    if largest and largest["over_on_chip_memory"]:
        lines.append(f"  largest activation on the Edge TPU: {largest['tensor']} {largest['shape']}, "
                     f"{largest['bytes'] / 2**20:.1f} MiB, more than its {ON_CHIP_BYTES // 2**20} MiB of on-chip "
                     "memory: the compiler may refuse the model ('large activation tensors', "
                     "google-coral/edgetpu#176); "
                     "use a smaller input or fewer channels at full resolution")
    compiler = report.get("compiler")
    if compiler:
        lines.append(f"  edgetpu_compiler {compiler['version']}: {compiler['mapped']}/{compiler['total']} ops mapped"
                     + ("" if compiler["agrees"] else " (differs from the prediction)"))
    else:
        lines.append("  edgetpu_compiler is not on PATH: static prediction only")
    return lines
