"""A .tflite file read as a plain graph: tensors, ops in execution order, their options and MACs.

The delegate checks need what the interpreter API does not expose: op versions, builtin options
(strides, dilations, fused activations, resize modes), which tensors are constants and their
values (axes, paddings). The flatbuffer schema ships with ai-edge-litert; no TensorFlow is
imported, so the same reader runs next to a device runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfpipe.errors import TfpipeError


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _enum_names(enum_class) -> dict[int, str]:
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_")}


_NUMPY = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "UINT8": np.uint8, "INT64": np.int64,
          "INT16": np.int16, "INT8": np.int8, "BOOL": np.bool_, "UINT32": np.uint32, "FLOAT64": np.float64}


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    signature: tuple[int, ...]  # -1 marks a dimension only known at run time
    dtype: str  # TFLite's name: INT8, UINT8, INT32, FLOAT32, ...
    value: np.ndarray | None = field(default=None, compare=False, repr=False)  # constants only
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()

    @property
    def constant(self) -> bool:
        return self.value is not None

    @property
    def dynamic(self) -> bool:
        return -1 in self.signature

    @property
    def quantized(self) -> bool:
        return bool(self.scale)

    @property
    def numpy_dtype(self):
        return _NUMPY[self.dtype]


@dataclass(frozen=True)
class Op:
    index: int  # position in execution order
    kind: str  # BuiltinOperator name (CONV_2D, ...) or the custom op's code
    version: int
    inputs: tuple[int, ...]  # tensor indices; -1 is an omitted optional input
    outputs: tuple[int, ...]
    options: dict = field(compare=False)
    custom: bool = False  # a CUSTOM op (kind is its custom code), not a builtin


@dataclass(frozen=True)
class Graph:
    tensors: tuple[Tensor, ...]
    ops: tuple[Op, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def op_inputs(self, op: Op) -> list[Tensor]:
        return [self.tensors[i] for i in op.inputs if i >= 0]

    def op_outputs(self, op: Op) -> list[Tensor]:
        return [self.tensors[i] for i in op.outputs if i >= 0]

    def multiply_adds(self, op: Op) -> int:
        """MACs of the op at its static shapes: convolutions and fully-connected layers only (the
        rest is elementwise or data movement, negligible next to them)."""
        if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"):
            return 0
        if op.kind == "TRANSPOSE_CONV":  # inputs: output shape, weights [O, kh, kw, I], input
            weights, x = self.tensors[op.inputs[1]], self.tensors[op.inputs[2]]
            return int(np.prod(x.shape)) * int(np.prod(weights.shape[:3]))
        out, weights = self.tensors[op.outputs[0]], self.tensors[op.inputs[1]]
        if op.kind == "CONV_2D":  # weights [O, kh, kw, I]
            return int(np.prod(out.shape)) * int(np.prod(weights.shape[1:]))
        if op.kind == "DEPTHWISE_CONV_2D":  # weights [1, kh, kw, C*multiplier]
            return int(np.prod(out.shape)) * int(np.prod(weights.shape[1:3]))
        return int(np.prod(out.shape)) * int(weights.shape[-1])  # FULLY_CONNECTED: weights [O, I]


def _options(op) -> dict:
    options = op.builtinOptions
    if options is None:
        return {}
    return {key: (value.tolist() if isinstance(value, np.ndarray) else value) for key, value in vars(options).items()}


def _value(tensor, buffers, dtype: str, data: bytes) -> np.ndarray | None:
    buffer = buffers[tensor.buffer] if 0 < tensor.buffer < len(buffers) else None
    if buffer is None:
        return None
    if buffer.data is not None and len(buffer.data):
        raw = np.asarray(buffer.data, np.uint8).tobytes()
    elif buffer.offset > 1 and buffer.size:  # large models keep buffers after the flatbuffer
        raw = data[buffer.offset: buffer.offset + buffer.size]
    else:
        return None
    if dtype not in _NUMPY:
        return np.frombuffer(raw, np.uint8)
    shape = tuple(int(d) for d in tensor.shape) if tensor.shape is not None else ()
    values = np.frombuffer(raw, _NUMPY[dtype])
    if tensor.sparsity is not None:  # TFLite's sparsity tooling stores only the non-zeros (read by DENSIFY)
        return _densify(values, tensor.sparsity, shape)
    return values.reshape(shape)


def _densify(values: np.ndarray, sparsity, shape: tuple[int, ...]) -> np.ndarray:
    """A sparse constant as the dense array DENSIFY makes of it (TFLite's schema: each level of
    `traversalOrder` is DENSE, `denseSize` children per parent, or SPARSE_CSR, the children of
    parent p at arrayIndices[arraySegments[p]:arraySegments[p + 1]]; levels past the tensor's rank
    are the inner coordinates of blocks of the dims `blockMap` names)."""
    order = [int(d) for d in sparsity.traversalOrder]
    block_map = [int(d) for d in (sparsity.blockMap if sparsity.blockMap is not None else [])]
    levels = sparsity.dimMetadata
    rank = len(shape)
    block_size = {dim: int(levels[order.index(rank + k)].denseSize) for k, dim in enumerate(block_map)}
    dense = np.zeros(shape, values.dtype)

    def visit(level: int, position: int, coords: list[int]) -> None:
        if level == len(order):
            index = [0] * rank
            for lvl, coord in enumerate(coords):
                dim = order[lvl]
                if dim < rank:
                    index[dim] += coord * block_size.get(dim, 1)
                else:
                    index[block_map[dim - rank]] += coord
            dense[tuple(index)] = values[position]
            return
        meta = levels[level]
        if meta.format == 0:  # DENSE
            for j in range(int(meta.denseSize)):
                visit(level + 1, position * int(meta.denseSize) + j, [*coords, j])
        else:  # SPARSE_CSR
            segments, indices = meta.arraySegments.values, meta.arrayIndices.values
            for k in range(int(segments[position]), int(segments[position + 1])):
                visit(level + 1, k, [*coords, int(indices[k])])

    visit(0, 0, [])
    return dense


def read_graph_bytes(data: bytes) -> Graph:
    """The main subgraph of a .tflite held in memory (a converter's output before it is written)."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.tflite"
        path.write_bytes(data)
        return read_graph(path)


def read_graph(path: str | Path) -> Graph:
    """The main subgraph of a .tflite file. A file that is not a TFLite flatbuffer is bad input."""
    from tfpipe.runtime.client import check_tflite_file

    path = check_tflite_file(path)
    data = path.read_bytes()
    schema = _schema()
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        if not model.subgraphs:
            raise ValueError("no subgraph")
    except Exception as e:  # a truncated or corrupt flatbuffer fails anywhere inside the generated reader
        raise TfpipeError(f"{path}: not a readable TFLite model ({type(e).__name__}: {e})",
                          "convert the model again; the file is truncated or corrupt") from None
    op_names, type_names = _enum_names(schema.BuiltinOperator), _enum_names(schema.TensorType)
    subgraph = model.subgraphs[0]
    buffers = model.buffers or []
    tensors = []
    for i, t in enumerate(subgraph.tensors):
        dtype = type_names.get(t.type, str(t.type))
        shape = tuple(int(d) for d in t.shape) if t.shape is not None else ()
        signature = tuple(int(d) for d in t.shapeSignature) if t.shapeSignature is not None else shape
        scale = tuple(float(s) for s in t.quantization.scale) if t.quantization and t.quantization.scale is not None \
            else ()
        zero_point = tuple(int(z) for z in t.quantization.zeroPoint) \
            if scale and t.quantization.zeroPoint is not None else ()
        name = t.name.decode() if isinstance(t.name, bytes) else (t.name or "")
        tensors.append(Tensor(i, name, shape, signature, dtype, _value(t, buffers, dtype, data), scale, zero_point))
    ops = []
    for i, op in enumerate(subgraph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        # builtinCode is the real field; files from old converters only fill the deprecated one
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        kind = op_names.get(builtin, str(builtin))
        if kind == "CUSTOM":
            kind = code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
        ops.append(Op(i, kind, int(code.version), tuple(int(x) for x in op.inputs),
                      tuple(int(x) for x in op.outputs), _options(op), custom=op_names.get(builtin) == "CUSTOM"))
    return Graph(tuple(tensors), tuple(ops), tuple(int(x) for x in subgraph.inputs),
                 tuple(int(x) for x in subgraph.outputs))


def part_bytes(path: str | Path, ops: list[int], inputs: list[int], outputs: list[int]) -> bytes:
    """A .tflite holding only some of the main subgraph's ops (indices, in execution order), which
    reads `inputs` and gives `outputs` (tensor indices), under a serving_default signature that
    names each `tensor_<index>` (tensor names need not be unique): e.g. the part of a model that
    runs on the CPU after an accelerator's cut, timed on its own. Every tensor and buffer stays in
    the file; those the part never touches are not allocated by the interpreter."""
    import flatbuffers

    from tfpipe.runtime.client import check_tflite_file

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(check_tflite_file(path).read_bytes()), 0)
    subgraph = model.subgraphs[0]
    subgraph.operators = [subgraph.operators[i] for i in ops]
    subgraph.inputs, subgraph.outputs = list(inputs), list(outputs)

    def entries(indices: list[int]) -> list:
        found = []
        for index in indices:
            entry = schema.TensorMapT()
            entry.name, entry.tensorIndex = f"tensor_{index}", index
            found.append(entry)
        return found

    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = b"serving_default", 0
    signature.inputs, signature.outputs = entries(inputs), entries(outputs)
    model.signatureDefs = [signature]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def analyzer_report(path: str | Path) -> str:
    """TFLite's model analyzer text for the file, with its GPU-delegate compatibility check on."""
    from ai_edge_litert import _pywrap_analyzer_wrapper

    return _pywrap_analyzer_wrapper.ModelAnalyzer(str(path), True, True)
