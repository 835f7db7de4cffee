"""The QAT model: tensorflow-model-optimization's fake quantization applied to a float model, its
activation ranges started at the float model's, and its H5 file.

`apply_qat` wraps a built float model with fake-quantization (weights per channel, activations
per tensor, BatchNorm folded into the preceding convolution), so fine-tuning learns weights that
survive int8. The QAT model is saved as H5: tf_keras' .keras loader cannot restore the state of
tfmot's QuantizeLayer ("expected 5 variables, received 3"), while H5 round-trips it exactly.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from tfpipe.backend import keras, tfmot, tfmot_quantize_configs


def quantize_config(layer):
    """The QuantizeConfig of a layer tfmot's default registry does not know, else None (tfmot's own).

    tfpipe's layers say it themselves (`quantize_output`, next to each layer: whether its output
    holds new values to quantize or only moves its quantized input's). Of Keras' own layers,
    Multiply (the gate of Squeeze-and-Excitation; TFLite runs an int8 MUL) and Resizing (bilinear,
    segmentation heads; as tfmot does UpSampling2D) are quantized at their output. None has weights."""
    configs = tfmot_quantize_configs()
    quantize_output = getattr(type(layer), "quantize_output", None)
    if quantize_output is None and isinstance(layer, (keras.layers.Multiply, keras.layers.Resizing)):
        quantize_output = True
    if quantize_output is None:
        return None
    return configs.Default8BitOutputQuantizeConfig() if quantize_output else configs.NoOpQuantizeConfig()


def apply_qat(model):
    """A quantization-aware copy of `model` (its weights are taken over).

    Weights are per channel, as the converter writes them. Per-tensor QAT (tfmot's
    Default8BitQuantizeScheme(disable_per_axis=True)) is not offered: with TF 2.21 its TFLite
    conversion lands far from the Keras QAT model (measured on Fashion-MNIST: 0.90 -> 0.35 top-1).
    """
    q = tfmot().quantization.keras
    if not any(quantize_config(layer) is not None for layer in model.layers):
        return q.quantize_model(model)

    def annotate(layer):
        clone = layer.__class__.from_config(layer.get_config())
        return q.quantize_annotate_layer(clone, quantize_config(layer))

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    with q.quantize_scope(custom_objects()):
        return q.quantize_apply(annotated)


# tfmot's activation quantizers start at [-6, 6] and move by an exponential average (decay 0.999):
# after one QAT epoch of 125 steps a range has moved only 12 % of the way, so ReLU outputs reaching
# 13 were clipped at 6.6 and Faster R-CNN's box encodings (-13.9 .. 4.5) at -6, which cost it 10
# mAP points. Ranges are therefore started where the float model's tensors really are.
RANGE_KINDS = ("output", "post_activation", "pre_activation")


def calibrate_ranges(qat_model, float_model, images: np.ndarray, batch_size: int = 16) -> int:
    """Sets every activation quantizer of `qat_model` (tfmot's `output_`, `post_activation_` and
    `pre_activation_` min/max, and the input's) to the min and max its tensor takes in `float_model`
    on `images` (widened to hold 0, as int8 needs), as post-training calibration would; QAT's
    moving average then starts there. Returns how many layer quantizers were measured."""
    plan = []  # (min variable, max variable, float layer, True for the pre-activation)
    for wrapper in qat_model.layers:
        variables = {v.name.split("/")[-1].split(":")[0]: v for v in wrapper.weights}
        inner = getattr(wrapper, "layer", None)
        if inner is None:
            if type(wrapper).__name__ == "QuantizeLayer":  # the input's: [0, 0] until a training step
                variables[f"{wrapper.name}_min"].assign(min(float(images.min()), 0.0))
                variables[f"{wrapper.name}_max"].assign(max(float(images.max()), 0.0))
            continue
        try:
            source = float_model.get_layer(inner.name)
        except ValueError:
            continue
        for kind in RANGE_KINDS:
            if f"{kind}_min" in variables and not isinstance(source.output, list):
                plan.append((variables[f"{kind}_min"], variables[f"{kind}_max"], source, kind == "pre_activation"))
    if not plan:
        return 0
    probe = keras.Model(float_model.input, [s.input if pre else s.output for _, _, s, pre in plan])
    low, high = np.full(len(plan), np.inf), np.full(len(plan), -np.inf)
    for start in range(0, len(images), batch_size):
        values = probe(images[start:start + batch_size], training=False)
        values = values if isinstance(values, list) else [values]
        for k, ((_, _, source, pre), v) in enumerate(zip(plan, values, strict=True)):
            v = _pre_activation(source, v) if pre else v
            low[k], high[k] = min(low[k], float(np.min(v))), max(high[k], float(np.max(v)))
    for (lo_var, hi_var, _, _), lo, hi in zip(plan, low, high, strict=True):
        if hi - lo > 1e-6:  # a tensor that never varies keeps tfmot's range
            lo_var.assign(min(lo, 0.0))
            hi_var.assign(max(hi, 0.0))
    return len(plan)


def _pre_activation(layer, x):
    """`layer`'s output before its activation (the logits of a softmax layer), for input `x`."""
    activation = layer.activation
    layer.activation = keras.activations.linear
    try:
        return layer(x)
    finally:
        layer.activation = activation


def float_twin(float_model, qat_model):
    """A float copy of `float_model` holding `qat_model`'s fine-tuned weights (each wrapped layer's
    own; the quantizers' ranges stay behind): weights trained to survive int8, for a graph the QAT
    model cannot be rewritten into (delegates/rewrite.py, calibrated again by the converter)."""
    from tfpipe import models

    wrappers = {layer.name.removeprefix("quant_"): layer for layer in qat_model.layers}
    with keras.utils.custom_object_scope(models.custom_layers()):
        twin = keras.models.clone_model(float_model)
    for layer in twin.layers:
        if layer.weights:  # a wrapper holds its layer's variables itself ('quant_conv/kernel:0')
            held = {_short(w.name): w for w in wrappers[layer.name].weights}
            layer.set_weights([held[_short(w.name)].numpy() for w in layer.weights])
    return twin


def _short(variable_name: str) -> str:
    return variable_name.split("/")[-1].split(":")[0]


def custom_objects() -> dict:
    """What tfmot's (legacy-format) deserialisation must be told: tfpipe's layers and the configs."""
    from tfpipe import models

    configs = tfmot_quantize_configs()
    return {**models.custom_layers(), **{c.__name__: c for c in (configs.Default8BitOutputQuantizeConfig,
                                                                  configs.NoOpQuantizeConfig)}}


def save_h5(model, path: Path) -> None:
    with warnings.catch_warnings():  # H5 is "legacy" to Keras, but the only format that round-trips QAT
        warnings.simplefilter("ignore", UserWarning)
        model.save(path)


def load_qat_model(path: Path):
    with tfmot().quantization.keras.quantize_scope(custom_objects()):
        return keras.models.load_model(path, compile=False)
