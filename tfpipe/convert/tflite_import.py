"""`convert --tflite FILE`: a float .tflite that tfpipe did not write (litert-torch, onnx2tf, a
vendor's), quantized by the LiteRT Quantizer (convert/litert.py) with no Keras source, and verified
like any run.

The file becomes the fp32 model of the run WORKDIR/<file stem> (export/model_fp32.tflite), whose
config.yaml records `model.name: external`, the input size read from the file and the preprocess
used for calibration (the calibration config's, or the default one with `--set preprocess.*` for a
folder of images). Two renamings make it a tfpipe model without touching a weight: its one
signature becomes `serving_default`, and the output the task reads (the only one, or --output)
becomes `probabilities`. Then each mode is quantized from it; `evaluate` compares every file with
this fp32 one (with the task's metric when the calibration config has labelled data, else by
agreement on a folder of images).

Refused, with one line: files that are already quantized, that take anything but one float image,
and custom ops (a detector's own post-processing, e.g. TFLite_Detection_PostProcess): the quantizer
cannot see inside them and the evaluator cannot decode them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tfpipe import io
from tfpipe.config import Config
from tfpipe.convert.external import calibration_data, clear_run, import_run, main_output
from tfpipe.errors import TfpipeError
from tfpipe.models.registry import MAIN_OUTPUT
from tfpipe.rundir import RunDir
from tfpipe.runtime import check_tflite_file
from tfpipe.runtime.graph import read_graph_bytes
from tfpipe.runtime.model import SIGNATURE


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_float_tflite(path: Path) -> tuple[bytes, dict]:
    """The file's bytes and its one signature ({inputs: {name: shape}, outputs: {name: shape}}),
    checked: builtin ops only, float, one image input [1, H, W, C]."""
    from ai_edge_litert.interpreter import Interpreter

    data = check_tflite_file(path).read_bytes()
    try:
        graph = read_graph_bytes(data)
    except TfpipeError as e:
        raise TfpipeError(f"--tflite: {path}: {e.message}", e.hint) from None
    custom = sorted({op.kind for op in graph.ops if op.custom})
    if custom:
        raise TfpipeError(f"--tflite: {path}: op {custom[0]} is a custom op" + (
            f" ({len(custom)} kinds: {', '.join(custom)})" if len(custom) > 1 else "") +
            ", whose insides the quantizer cannot see and the evaluator cannot decode",
            "export the model without it (a detector: its raw box and score tensors, decoded on the host)")
    if any(t.quantized and not t.constant for t in graph.tensors):
        raise TfpipeError(f"--tflite: {path}: already quantized (activations in "
                          f"{', '.join(sorted({t.dtype for t in graph.tensors if t.quantized and not t.constant}))})",
                          "give the float .tflite it was made from")
    interpreter = Interpreter(model_content=data)
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        raise TfpipeError(f"--tflite: {path}: {len(signatures)} signatures ({', '.join(signatures) or 'none'})",
                          "convert it with one signature (TFLiteConverter writes serving_default)")
    runner = interpreter.get_signature_runner(next(iter(signatures)))
    inputs, outputs = runner.get_input_details(), runner.get_output_details()
    if len(inputs) != 1:
        raise TfpipeError(f"--tflite: {path}: {len(inputs)} inputs ({', '.join(inputs)})",
                          "tfpipe quantizes single-input image models")
    (name, detail), = inputs.items()
    shape = [int(d) for d in detail["shape"]]
    if len(shape) != 4 or shape[0] != 1 or detail["dtype"].__name__ != "float32":
        raise TfpipeError(f"--tflite: {path}: input {name!r} is {detail['dtype'].__name__} {shape}",
                          "tfpipe quantizes models taking one float32 image batch [1, H, W, C]")
    return data, {"inputs": {name: shape}, "outputs": {k: [int(d) for d in v["shape"]] for k, v in outputs.items()}}


def as_run_model(data: bytes, output: str) -> bytes:
    """The same model with its signature called serving_default and `output` called probabilities
    (names only: every op, tensor and weight is the file's)."""
    from tensorflow.lite.tools import flatbuffer_utils

    from tfpipe.convert.litert import inline_buffers

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(inline_buffers(data)))
    (signature,) = model.signatureDefs
    signature.signatureKey = SIGNATURE
    for tensor in signature.outputs:
        if _text(tensor.name) == output:
            tensor.name = MAIN_OUTPUT
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


@dataclasses.dataclass(frozen=True)
class TFLiteImport:
    """A checked import, not yet written."""

    source: Path
    model: bytes  # renamed (as_run_model)
    output: str
    cfg: Config
    run: RunDir
    class_names: tuple[str, ...]
    images: object  # preprocessed calibration images of a folder, else None (the config's dataset)

    def write(self, force: bool) -> Path:
        """config.yaml, export/model_fp32.tflite and train/imported.json; `force` clears the run first."""
        if force:
            clear_run(self.run)
        self.run.write_config(self.cfg)
        path = self.run.tflite("none")
        io.write_with(path, lambda tmp: Path(tmp).write_bytes(self.model))
        h, w, c = (*self.cfg.model.input_size, self.cfg.model.channels)
        io.write_json(self.run.train / "imported.json", {"source": str(self.source.resolve()), "format": "tflite",
                                                         "input": [h, w, c], "output": self.output,
                                                         "classes": list(self.class_names)})
        renamed = f" as {MAIN_OUTPUT!r}" if self.output != MAIN_OUTPUT else ""
        print(f"Imported {self.source} (float, input {h}x{w}x{c}, output {self.output!r}{renamed}) as {path}",
              flush=True)
        return path


def prepare(path: Path, calibration: Path, workdir: Path, overrides: list[str], default_config: Path, *,
            output: str | None = None, classes: str | None = None, name: str | None = None,
            force: bool = False) -> TFLiteImport:
    """Check the file, its calibration data and class names, and the run; nothing is written."""
    data, signature = read_float_tflite(path)
    out = main_output(list(signature["outputs"]), path, output, "--tflite")
    _, h, w, c = next(iter(signature["inputs"].values()))
    cfg, run = import_run(calibration, classes, overrides, default_config, name or path.stem, (h, w, c), workdir,
                          force, "--tflite")
    names, images = calibration_data(cfg, calibration, classes, signature["outputs"][out][-1], path)
    return TFLiteImport(path, as_run_model(data, out), out, cfg, run, names, images)
