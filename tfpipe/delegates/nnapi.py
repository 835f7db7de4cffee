"""NNAPI delegate: a prediction of which ops it takes, and the Android version the model needs.

Table-based: each op with the first Android API level whose NNAPI the TFLite NNAPI delegate maps
it to (transcribed from the delegate's op validation, tensorflow/lite/delegates/nnapi). Signed int8
tensors (TFLite's full-integer models) need NNAPI 1.3, Android 11 (API 30). Op versions and the
per-op argument limits are not checked, and vendor drivers decide the rest on the device: this is
labelled a prediction everywhere it is shown.
"""

from __future__ import annotations

from pathlib import Path

from tfpipe.runtime.graph import read_graph

SIGNED_INT8_API = 30
MIN_API = {
    **dict.fromkeys(["ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE",
                     "DEQUANTIZE", "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "LSTM", "MAX_POOL_2D", "MUL",
                     "RELU", "RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "SOFTMAX", "SPACE_TO_DEPTH",
                     "TANH"], 27),
    **dict.fromkeys(["BATCH_TO_SPACE_ND", "DIV", "MEAN", "PAD", "SPACE_TO_BATCH_ND", "SQUEEZE", "STRIDED_SLICE",
                     "SUB", "TRANSPOSE"], 28),
    **dict.fromkeys(["ABS", "ARG_MAX", "ARG_MIN", "CAST", "EXP", "EXPAND_DIMS", "GATHER", "LEAKY_RELU", "LOG",
                     "MAXIMUM", "MINIMUM", "NEG", "POW", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN",
                     "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SPLIT", "SQRT", "SUM", "TILE", "TOPK_V2",
                     "TRANSPOSE_CONV"], 29),
    **dict.fromkeys(["ELU", "FILL", "HARD_SWISH", "PACK", "SQUARED_DIFFERENCE"], 30),
}


# Tensor types the delegate maps to NNAPI operand types (float16 from API 29, bool8 from 29, signed
# int8 from 30). NNAPI has no int64 operand, and its 16-bit quantized types serve only its LSTM ops,
# so the delegate leaves int16-activation (int16x8) ops on the CPU (nnapi_delegate.cc, Validate).
TENSOR_TYPES = {"FLOAT32": 27, "INT32": 27, "UINT8": 27, "FLOAT16": 29, "BOOL": 29, "INT8": SIGNED_INT8_API}


def _op_row(graph, op) -> dict:
    live = [t for t in graph.op_inputs(op) + graph.op_outputs(op) if not t.constant]
    typed = [t for t in live if t.dtype not in TENSOR_TYPES]
    reason = None
    if op.kind not in MIN_API:
        reason = f"{op.kind} is not in the NNAPI delegate's op list"
    elif typed:
        reason = f"{op.kind} on a {typed[0].dtype} tensor (NNAPI has no operand type the delegate maps it to)"
    # an op needs the Android version of its NNAPI operation and of each of its tensors' types
    min_api = max([MIN_API[op.kind], *(TENSOR_TYPES[t.dtype] for t in live)]) if reason is None else None
    return {"index": op.index, "op": op.kind, "min_api": min_api, "supported": reason is None, "reason": reason}


def check(path: Path) -> dict:
    graph = read_graph(path)
    signed = any(t.dtype == "INT8" and not t.constant for t in graph.tensors)
    per_op = [_op_row(graph, op) for op in graph.ops]
    levels = [row["min_api"] for row in per_op if row["supported"]] + ([SIGNED_INT8_API] if signed else [])
    return {"unsupported_ops": sorted({r["op"] for r in per_op if not r["supported"]}),
            "min_android_api": max(levels, default=27), "signed_int8": signed,
            "ops": {"total": len(per_op), "supported": sum(r["supported"] for r in per_op)}, "per_op": per_op}


def summary_lines(report: dict) -> list[str]:
    ops = report["ops"]
    line = (f"NNAPI (predicted): {ops['supported']}/{ops['total']} ops delegated, needs Android API "
            f"{report['min_android_api']}+" + (" (signed int8 tensors)" if report["signed_int8"] else ""))
    if report["unsupported_ops"]:
        line += f"; CPU for {', '.join(report['unsupported_ops'])}"
    return [line]
