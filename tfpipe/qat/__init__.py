"""Quantization-aware training with tensorflow-model-optimization.

`apply_qat` wraps a built float model with fake-quantization (weights per channel, activations
per tensor, BatchNorm folded into the preceding convolution), so fine-tuning learns weights that
survive int8. The QAT model is saved as H5: tf_keras' .keras loader cannot restore the state of
tfmot's QuantizeLayer ("expected 5 variables, received 3"), while H5 round-trips it exactly.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from tfpipe import io, tasks
from tfpipe.backend import keras, tfmot, tfmot_quantize_configs
from tfpipe.config import Config
from tfpipe.data.pipeline import Splits
from tfpipe.rundir import RunDir

# Layers tfmot's default registry does not know, by the QuantizeConfig they get. None has weights.
# Multiply (the gate of Squeeze-and-Excitation) is quantized at its output: TFLite runs an int8 MUL.
# ChannelSplit (ShuffleNet v2) is left alone: its outputs are its already quantized input's values.
# Resizing (bilinear, segmentation heads) is quantized at its output, as tfmot does UpSampling2D.
# MaxUnpooling2D (SegNet), DepthToSpace (sub-pixel transposed convolutions) and SpaceToDepth
# (YOLOv2's passthrough) are left alone: they output their quantized input's values (or zero).
# Faster R-CNN: RoIAlign's bilinear blends and the final box encodings are quantized at their
# output; the proposals (box corners picked from the RPN) are left as they are.
CONFIGS = {"Multiply": "Default8BitOutputQuantizeConfig", "ChannelSplit": "NoOpQuantizeConfig",
           "Resizing": "Default8BitOutputQuantizeConfig", "MaxUnpooling2D": "NoOpQuantizeConfig",
           "DepthToSpace": "NoOpQuantizeConfig", "SpaceToDepth": "NoOpQuantizeConfig",
           "RoIAlign": "Default8BitOutputQuantizeConfig", "Proposals": "NoOpQuantizeConfig",
           "UnitAnchorEncoding": "Default8BitOutputQuantizeConfig"}


def apply_qat(model):
    """A quantization-aware copy of `model` (its weights are taken over).

    Weights are per channel, as the converter writes them. Per-tensor QAT (tfmot's
    Default8BitQuantizeScheme(disable_per_axis=True)) is not offered: with TF 2.21 its TFLite
    conversion lands far from the Keras QAT model (measured on Fashion-MNIST: 0.90 -> 0.35 top-1).
    """
    q = tfmot().quantization.keras
    if not any(type(layer).__name__ in CONFIGS for layer in model.layers):
        return q.quantize_model(model)

    def annotate(layer):
        clone = layer.__class__.from_config(layer.get_config())
        config = CONFIGS.get(type(layer).__name__)
        return q.quantize_annotate_layer(clone, getattr(tfmot_quantize_configs(), config)() if config else None)

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    with q.quantize_scope(_custom_objects()):
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


def _custom_objects() -> dict:
    """What tfmot's (legacy-format) deserialisation must be told: tfpipe's layers and the configs."""
    from tfpipe import models

    configs = {name: getattr(tfmot_quantize_configs(), name) for name in CONFIGS.values()}
    return {**models.custom_layers(), **configs}


def save_h5(model, path: Path) -> None:
    with warnings.catch_warnings():  # H5 is "legacy" to Keras, but the only format that round-trips QAT
        warnings.simplefilter("ignore", UserWarning)
        model.save(path)


def load_qat_model(path: Path):
    with tfmot().quantization.keras.quantize_scope(_custom_objects()):
        return keras.models.load_model(path, compile=False)


def finetune(cfg: Config, run: RunDir, splits: Splits | None = None) -> Path:
    """Fine-tune train/model.keras with QAT for qat.epochs; saves qat/model.h5."""
    from tfpipe.train.schedules import warmup_cosine
    from tfpipe.train.trainer import describe_validation, fit, load_float_model, steps_per_epoch

    splits = splits or tasks.of(cfg).load_splits(cfg)
    keras.utils.set_random_seed(cfg.train.seed)
    float_model = load_float_model(run)
    model = apply_qat(float_model)
    spec = cfg.preprocess_spec()
    images = splits.calibration_inputs(spec, cfg.convert.calibration_samples, cfg.train.seed)
    count = calibrate_ranges(model, float_model, images)
    print(f"Started {count} activation ranges at the float model's, measured on {len(images)} training images",
          flush=True)
    # Its own schedule: cosine from qat.learning_rate, no warm-up (the weights are already trained).
    schedule = warmup_cosine(cfg.qat.learning_rate, cfg.qat.epochs * steps_per_epoch(cfg, splits), 0)
    print(f"Quantization-aware fine-tuning for {cfg.qat.epochs} epoch(s) at learning rate {cfg.qat.learning_rate:g}",
          flush=True)
    history = fit(model, cfg, splits, spec, epochs=cfg.qat.epochs,
                  learning_rate=schedule, out_dir=run.qat_model.parent)
    io.write_with(run.qat_model, lambda tmp: save_h5(model, tmp))
    print(f"Saved the QAT model to {run.qat_model}{describe_validation(history)}", flush=True)
    return run.qat_model


def ensure_qat(cfg: Config, run: RunDir, splits: Splits | None = None) -> Path:
    if run.qat_model.is_file():
        print(f"Using the QAT model {run.qat_model}", flush=True)
        return run.qat_model
    print(f"No QAT model in {run.root}: running quantization-aware training first", flush=True)
    return finetune(cfg, run, splits)
