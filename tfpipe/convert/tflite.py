"""The TFLite conversion itself: the serving signature (batch 1, static shapes, the output layers'
names), the calibration feed, and the converter's settings for each quantization mode. The
policy (which modes, which model, the bundle) is convert/converter.py's."""

from __future__ import annotations

import re

import numpy as np

from tfpipe.backend import native_output_silenced, tf
from tfpipe.convert.postprocess import postprocess_last, with_postprocess
from tfpipe.errors import TfpipeError
from tfpipe.models.registry import MAIN_OUTPUT, output_names
from tfpipe.runtime.contract import CLASS_MAP, QUANT_MODES

# the converter's message when its quantizer meets an op it has no quantized kernel for
UNSUPPORTED_OP = re.compile(r"Quantization to (\S+) not yet supported for op: '([^']+)'")
TF_IO = {"uint8": tf.uint8, "int8": tf.int8, "float": tf.float32}  # io_dtype -> the converter's type


def with_class_map(model, alone: bool = False):
    """The model plus a `class_map` output: uint8 [batch, H, W], the argmax over classes, so a
    device gets the segmentation without reading back [H, W, classes] scores. The argmax reads the
    logits (the softmax's input): the same classes as the probabilities' argmax in float, with far
    fewer ties once int8 squeezes the probabilities into 256 steps. `alone`: the class map is the
    only output, so the per-pixel softmax leaves the graph (an Edge TPU build: SOFTMAX of a
    [H, W, classes] tensor does not map, and the class map does not need it)."""
    from tfpipe.backend import keras

    softmax = next((la for la in model.layers if la.name.removeprefix("quant_") == MAIN_OUTPUT), None)
    if softmax is None:
        raise TfpipeError(f"convert.class_map: model {model.name} has no `{MAIN_OUTPUT}` layer",
                          "the class map needs a segmentation model from the zoo")
    logits = softmax.input
    class_map = tf.cast(tf.argmax(logits, axis=-1, output_type=tf.int32), tf.uint8)
    if alone:
        return keras.Model(model.input, [class_map], name=model.name), [CLASS_MAP]
    outputs = model.outputs if len(model.outputs) > 1 else [model.output]
    return keras.Model(model.input, [*outputs, class_map], name=model.name), [*output_names(model), CLASS_MAP]


def serving_function(model, batch: int = 1, class_map: bool | str = False, postprocess=None):
    """A tf.function with a fixed batch and the model's output layer names as signature names
    (plus `class_map` when asked; only it with class_map="alone"). `postprocess` (anchors,
    DetectionConfig) appends the detection post-processing op instead: the outputs are then
    runtime/contract.py's POSTPROCESS_OUTPUTS."""
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    specs = [tf.TensorSpec([batch, *shape[1:]], tf.float32, name=name)
             for shape, name in zip(shapes, model.input_names, strict=True)]
    model, names = with_class_map(model, class_map == "alone") if class_map else (model, output_names(model))

    def raw(*x):
        outputs = model(x[0] if len(x) == 1 else list(x), training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return dict(zip(names, outputs, strict=True))

    body = raw if postprocess is None else with_postprocess(model, *postprocess, names)
    return tf.function(body, input_signature=specs).get_concrete_function()


def representative_dataset(calibration: np.ndarray | dict[str, np.ndarray], input_names: list[str]):
    """The converter's calibration feed, one sample at a time, keyed by signature input name: a
    list would be matched to the converted graph's inputs by position, and their order need not be
    the Keras model's (two-input RoIAlign models came out swapped about one conversion in two)."""
    feeds = calibration if isinstance(calibration, dict) else {input_names[0]: calibration}
    if sorted(feeds) != sorted(input_names):
        raise ValueError(f"calibration data for {sorted(feeds)}, the model takes {sorted(input_names)}")
    count = len(next(iter(feeds.values())))
    return lambda: ({name: x[i : i + 1] for name, x in feeds.items()} for i in range(count))


def with_io_type(data: bytes, input_dtype: str, output_dtype: str) -> bytes:
    """A quantized model with float input/output (QUANTIZE after the input, DEQUANTIZE before each
    output) given the integer interface asked for, by TFLiteConverter's own helper; float keeps it."""
    if input_dtype == output_dtype == "float":
        return data
    import logging

    from tensorflow.lite.python.util import modify_model_io_type

    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)  # its warning that a non-float output (class_map) keeps its type
    try:
        return modify_model_io_type(data, TF_IO[input_dtype], TF_IO[output_dtype])
    finally:
        absl.setLevel(level)


def variables_of(model):
    """The trackable the converter saves next to the serving function: only the model's variables.
    Handing it the Keras model itself makes the converter write a Keras SavedModel, which traces
    every layer's call: 5x slower, for byte-identical .tflite files (measured on the quickstart)."""
    holder = tf.Module()
    holder.model_variables = list(model.variables)
    return holder


def to_tflite(model, quantize: str, io_dtype: str, calibration: np.ndarray | dict[str, np.ndarray] | None,
              class_map: bool | str = False,
              postprocess=None, float_layers: tuple[str, ...] = ()) -> bytes:
    """The .tflite bytes of `model` in mode `quantize`; `postprocess` as for serving_function.
    int8 is integer kernels only, except for the ops of `float_layers` (Keras layer names), which
    stay float (Faster R-CNN's box and sampling arithmetic): then only the input takes `io_dtype`."""
    function = serving_function(model, class_map=class_map, postprocess=postprocess)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], variables_of(model))
    if postprocess is not None:
        converter.allow_custom_ops = True  # TFLite_Detection_PostProcess: in every TFLite runtime
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if QUANT_MODES[quantize].calibrated:
        if calibration is None:
            raise ValueError(f"{quantize} needs calibration data")
        # For a QAT model the ranges come from its fake-quant nodes; the converter still insists
        # on a representative dataset when converting from a concrete function.
        converter.representative_dataset = representative_dataset(calibration, model.input_names)
    if quantize == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] + (
            [tf.lite.OpsSet.TFLITE_BUILTINS] if float_layers else [])
        converter.inference_input_type = TF_IO[io_dtype]
        # the post-processing op computes in float and outputs float boxes, classes and scores
        converter.inference_output_type = TF_IO[io_dtype] if postprocess is None else tf.float32
    if quantize == "int16x8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    with native_output_silenced((1, 2)):
        try:
            if quantize == "int8" and float_layers:
                data = _int8_keeping_float(converter, float_layers, io_dtype)
            else:
                data = converter.convert()
        except RuntimeError as e:
            unsupported = UNSUPPORTED_OP.search(str(e))
            if unsupported is None:
                raise
            # e.g. DEPTH_TO_SPACE (U-Net's upsampling) and the detection post-processing op (CUSTOM)
            raise TfpipeError(f"--quantize {quantize}: TFLite's {unsupported[1]} quantizer has no kernel for "
                              f"{unsupported[2]} in {model.name}", "choose another mode, e.g. int8") from None
    return data if postprocess is None else postprocess_last(data)


def layer_tensors(data: bytes, layers: tuple[str, ...]) -> list[str]:
    """Names of the tensors that Keras layers `layers` produced in a converted model (float or QAT)."""
    from tfpipe.runtime.graph import read_graph_bytes

    scopes = tuple(f"/{prefix}{layer}/" for layer in layers for prefix in ("", "quant_"))
    return [t.name for t in read_graph_bytes(data).tensors if scopes and any(s in t.name for s in scopes)]


def _int8_keeping_float(converter, layers: tuple[str, ...], io_dtype: str) -> bytes:
    """int8 with the ops of `layers` left in float: calibrate, then quantize every tensor but
    theirs (the mechanism of TensorFlow's QuantizationDebugger denylist, without its debug ops).
    The input takes `io_dtype`; the outputs are float (a float layer's, or the post-processing
    op's, are float anyway)."""
    from tensorflow.lite.python import convert as lite_convert

    converter._experimental_calibrate_only = True
    calibrated = converter.convert()
    keep = layer_tensors(calibrated, layers)
    if not keep:
        raise ValueError(f"no tensors of the layers {list(layers)} to keep in float")
    data = lite_convert.mlir_quantize(calibrated, disable_per_channel=False, fully_quantize=False,
                                      enable_numeric_verify=False, denylisted_nodes=keep)
    return with_io_type(data, io_dtype, "float")
