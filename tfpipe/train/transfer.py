"""Transfer learning: start from trained weights, train the new layers with the transferred ones
frozen, then unfreeze everything at a lower learning rate (the trainer's two phases).

`train.pretrained` names a .keras or .h5 model file - any Keras model, tfpipe's or not: each
layer of the new model takes the weights of the source layer with the same name when every
weight has the same shape (so a classifier with another number of classes starts fresh). Or
`imagenet`: keras.applications' ImageNet weights, downloaded on first use (online only), for the
families whose layers match keras.applications' one for one (MobileNetV2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe.backend import keras
from tfpipe.errors import TfpipeError

# tfpipe family -> keras.applications constructor taking (alpha) whose weighted layers are ours in order.
APPLICATIONS = {"mobilenet_v2": "MobileNetV2"}


def load_pretrained(model, source: str) -> list[str]:
    """Copy weights into `model`; returns the names of the layers that received them."""
    if source == "imagenet":
        return _from_applications(model)
    path = Path(source)
    if not path.is_file():
        raise TfpipeError(f"train.pretrained: {source}: file not found",
                          "name a model saved by Keras (e.g. runs/X/train/model.keras), or imagenet")
    if path.suffix not in (".keras", ".h5"):
        raise TfpipeError(f"train.pretrained: {source}: not a .keras or .h5 model file",
                          "name a model saved by Keras (e.g. runs/X/train/model.keras), or imagenet")
    try:
        from tfpipe import models

        with keras.utils.custom_object_scope(models.custom_layers()):
            source_model = keras.models.load_model(path, compile=False)
    except (OSError, ValueError, TypeError) as e:
        raise TfpipeError(f"train.pretrained: {source}: cannot be loaded ({e})".splitlines()[0],
                          "name a model file saved by Keras") from None
    by_name = {layer.name: layer for layer in source_model.layers if layer.weights}
    loaded = []
    for layer in model.layers:
        other = by_name.get(layer.name)
        if other is None or not layer.weights:
            continue
        weights = other.get_weights()
        if [w.shape for w in weights] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(weights)
            loaded.append(layer.name)
    if not loaded:
        raise TfpipeError(f"train.pretrained: {source}: no layer matches {model.name} by name and weight shapes",
                          "transfer from a model of the same family")
    return loaded


def _from_applications(model) -> list[str]:
    family = next((f for f in APPLICATIONS if model.name.startswith(f)), None)
    if family is None:
        raise TfpipeError(f"train.pretrained: imagenet weights are not mapped for {model.name}",
                          f"families with keras.applications weights: {', '.join(APPLICATIONS)}; "
                          "or name a local .keras file")
    width = float(model.name.rsplit("_", 1)[1])
    try:
        source = getattr(keras.applications, APPLICATIONS[family])(
            input_shape=(*model.input_shape[1:3], 3), alpha=width, include_top=False, weights="imagenet")
    except Exception as e:  # no network, or no weights for this width: say so on one line
        raise TfpipeError(f"train.pretrained: imagenet: keras.applications could not provide the weights "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
                          "this needs internet access to storage.googleapis.com; or name a local .keras file") from None
    return copy_in_order(source, model)


def copy_in_order(source, model) -> list[str]:
    """Copy the weights of `source`'s weighted layers into `model`'s, in order, as far as both go
    (`model` may have a classifier after them). A 3-channel stem goes into a 1-channel model as the
    sum over its colour channels: grey = r = g = b gives the same response."""
    ours = [layer for layer in model.layers if layer.weights]
    theirs = [layer for layer in source.layers if layer.weights]
    loaded = []
    for mine, other in zip(ours, theirs, strict=False):
        weights = other.get_weights()
        if loaded == [] and weights[0].ndim == 4 and weights[0].shape[2] == 3 and mine.weights[0].shape[2] == 1:
            weights[0] = weights[0].sum(axis=2, keepdims=True)
        if [w.shape for w in weights] != [tuple(w.shape) for w in mine.weights]:
            break
        mine.set_weights([np.asarray(w) for w in weights])
        loaded.append(mine.name)
    if len(loaded) != len(theirs):
        raise TfpipeError(f"train.pretrained: {source.name} does not match {model.name} layer for layer "
                          f"(stopped at {len(loaded)} of {len(theirs)})", "check model.name and model.args")
    return loaded


# The zoo's classifier layers: they train in the frozen phase even when they were transferred.
CLASSIFIERS = ("logits", "classes")


def set_frozen(model, transferred: list[str], frozen: bool) -> None:
    """Freeze (or unfreeze) the transferred layers but the classifier. A frozen BatchNormalization
    also runs in inference mode (tf_keras), so its statistics stay those of the source model."""
    for name in transferred:
        if name not in CLASSIFIERS:
            model.get_layer(name).trainable = not frozen
