"""Quantization-aware training with tensorflow-model-optimization.

`apply_qat` wraps a built float model with fake-quantization (weights per channel, activations
per tensor, BatchNorm folded into the preceding convolution), so fine-tuning learns weights that
survive int8. The QAT model is saved as H5: tf_keras' .keras loader cannot restore the state of
tfmot's QuantizeLayer ("expected 5 variables, received 3"), while H5 round-trips it exactly.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from tfpipe import io
from tfpipe.backend import keras, tfmot, tfmot_quantize_configs
from tfpipe.config import Config
from tfpipe.data.pipeline import SceneSplits, Splits, load_splits
from tfpipe.data.preprocess import PreprocessSpec
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


def _custom_objects() -> dict:
    """What tfmot's (legacy-format) deserialisation must be told: the configs and tfpipe's layers."""
    from tfpipe.models.blocks import ChannelSplit, SpaceToDepth
    from tfpipe.models.detection.faster_rcnn import Proposals, RoIAlign, UnitAnchorEncoding
    from tfpipe.models.segmentation.common import DepthToSpace
    from tfpipe.models.segmentation.segnet import MaxUnpooling2D

    configs = {name: getattr(tfmot_quantize_configs(), name) for name in CONFIGS.values()}
    return {"ChannelSplit": ChannelSplit, "MaxUnpooling2D": MaxUnpooling2D, "DepthToSpace": DepthToSpace,
            "SpaceToDepth": SpaceToDepth, "RoIAlign": RoIAlign, "Proposals": Proposals,
            "UnitAnchorEncoding": UnitAnchorEncoding, **configs}


def save_h5(model, path: Path) -> None:
    with warnings.catch_warnings():  # H5 is "legacy" to Keras, but the only format that round-trips QAT
        warnings.simplefilter("ignore", UserWarning)
        model.save(path)


def load_qat_model(path: Path):
    with tfmot().quantization.keras.quantize_scope(_custom_objects()):
        return keras.models.load_model(path, compile=False)


def finetune(cfg: Config, run: RunDir, splits: Splits | SceneSplits | None = None) -> Path:
    """Fine-tune train/model.keras with QAT for qat.epochs; saves qat/model.h5."""
    from tfpipe.train.schedules import warmup_cosine
    from tfpipe.train.trainer import describe_validation, fit, load_float_model, steps_per_epoch

    splits = splits or load_splits(cfg.data, cfg.task)
    keras.utils.set_random_seed(cfg.train.seed)
    model = apply_qat(load_float_model(run))
    # Its own schedule: cosine from qat.learning_rate, no warm-up (the weights are already trained).
    schedule = warmup_cosine(cfg.qat.learning_rate, cfg.qat.epochs * steps_per_epoch(cfg, splits), 0)
    print(f"Quantization-aware fine-tuning for {cfg.qat.epochs} epoch(s) at learning rate {cfg.qat.learning_rate:g}",
          flush=True)
    history = fit(model, cfg, splits, PreprocessSpec.from_config(cfg), epochs=cfg.qat.epochs,
                  learning_rate=schedule, out_dir=run.qat_model.parent)
    io.write_with(run.qat_model, lambda tmp: save_h5(model, tmp))
    print(f"Saved the QAT model to {run.qat_model}{describe_validation(history)}", flush=True)
    return run.qat_model


def ensure_qat(cfg: Config, run: RunDir, splits: Splits | SceneSplits | None = None) -> Path:
    if run.qat_model.is_file():
        print(f"Using the QAT model {run.qat_model}", flush=True)
        return run.qat_model
    print(f"No QAT model in {run.root}: running quantization-aware training first", flush=True)
    return finetune(cfg, run, splits)
