"""GPU delegate: which ops will fall back to the CPU.

Two sources, both recorded. TFLite's own model analyzer with its GPU-compatibility check is run
and its verdict kept; but the analyzer shipped with TF 2.21 and ai-edge-litert 2.3 calls every
model compatible (checked with CUMSUM, TOPK_V2, NON_MAX_SUPPRESSION_V4, ATAN2, REVERSE_V2, none of
which the GPU delegate runs), so the ops are also checked against the GPU delegate's documented
op list (tensorflow.org/lite/performance/gpu, "Supported ops") plus the quantization and layout
ops its parser handles. Both are predictions: the delegate decides at load time on the phone.
"""

from __future__ import annotations

from pathlib import Path

from tfpipe.runtime.graph import analyzer_report, read_graph

SUPPORTED = {
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXP", "FULLY_CONNECTED", "LOGISTIC",
    "LSTM", "MAX_POOL_2D", "MAXIMUM", "MINIMUM", "MUL", "PAD", "PRELU", "RELU", "RELU6", "RESHAPE",
    "RESIZE_BILINEAR", "SOFTMAX", "STRIDED_SLICE", "SUB", "TRANSPOSE_CONV",
    # beyond the page: parsed by the delegate's model builder
    "MEAN", "QUANTIZE", "DEQUANTIZE", "HARD_SWISH", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "RESIZE_NEAREST_NEIGHBOR",
    "TANH", "SLICE", "SPLIT", "TRANSPOSE", "LEAKY_RELU", "DIV", "SQUARED_DIFFERENCE",
}
MAX_RANK = 4
# Activation types the delegate computes in: float32/float16, and 8-bit quantized tensors (which it
# dequantizes); int32 for index and shape tensors. int16 activations (int16x8 models), int64 and
# bool are refused by its op parsers (tensorflow/lite/delegates/gpu/common/model_builder.cc).
TENSOR_TYPES = {"FLOAT32", "FLOAT16", "INT8", "UINT8", "INT32"}


def check(path: Path) -> dict:
    graph = read_graph(path)
    per_op = []
    for op in graph.ops:
        reason = None
        if op.kind not in SUPPORTED:
            reason = f"{op.kind} is not in the GPU delegate's op list"
        else:
            live = [t for t in graph.op_inputs(op) + graph.op_outputs(op) if not t.constant]
            big = [t for t in live if len(t.shape) > MAX_RANK]
            typed = [t for t in live if t.dtype not in TENSOR_TYPES]
            if big:
                reason = f"{op.kind} on a {len(big[0].shape)}-D tensor (the GPU delegate handles at most 4-D)"
            elif typed:
                reason = (f"{op.kind} on a {typed[0].dtype} tensor (the GPU delegate takes float32/float16 or 8-bit "
                          "quantized tensors)")
        per_op.append({"index": op.index, "op": op.kind, "supported": reason is None, "reason": reason})
    unsupported = sorted({row["op"] for row in per_op if not row["supported"]})
    text = analyzer_report(path)
    analyzer = {"compatible": "looks compatible with GPU delegate" in text,
                "warnings": [line.strip() for line in text.splitlines() if "GPU COMPATIBILITY WARNING" in line]}
    supported = sum(row["supported"] for row in per_op)
    return {"unsupported_ops": unsupported, "ops": {"total": len(per_op), "supported": supported},
            "per_op": per_op, "analyzer": analyzer}


def summary_lines(report: dict) -> list[str]:
    ops = report["ops"]
    line = f"GPU (predicted): {ops['supported']}/{ops['total']} ops on the GPU delegate"
    if report["unsupported_ops"]:
        line += f"; falls back to the CPU for {', '.join(report['unsupported_ops'])}"
    analyzer = "compatible" if report["analyzer"]["compatible"] else f"{len(report['analyzer']['warnings'])} warning(s)"
    return [line, f"  TFLite analyzer (gpu_compatibility): {analyzer}"]
