"""Transfer learning: start from trained weights, train the new layers with the transferred ones
frozen, then unfreeze everything at a lower learning rate (the trainer's two phases).

`train.pretrained` names a .keras or .h5 model file - any Keras model, tfpipe's or not - or a
weights-only .h5, or a run folder (runs/NAME: its trained float model): each layer of the new
model takes the weights of the source layer with the same name when every weight has the same
shape (so a classifier with another number of classes starts fresh). That is also cross-task
transfer: a detector or segmenter built on a family's backbone (SSDLite and DeepLabv3+ on
MobileNetV2) takes the backbone of a classification run of that family and width, and trains
its new head. A convolution kernel that differs only in its input channels, 1 against 3 (a
grayscale classifier's stem for a colour detector, or the other way), is carried over so that a
grey image (r = g = b) gets the same response: repeated / 3, or summed.

Or `imagenet`: keras.applications' ImageNet weights, downloaded on first use (online only), for
the families whose layers match keras.applications' one for one (see APPLICATIONS).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe.backend import keras
from tfpipe.errors import TfpipeError

# tfpipe model name (as models.build names it) -> the keras.applications constructor whose weighted
# layers are ours one for one with the same function (tests/unit/test_training.py checks the
# outputs agree within 1e-4), and whether it takes MobileNet's width `alpha`. MobileNets and VGGs
# match in order; keras' ResNet v1 matches tfpipe's resnet with model.args.v1 (tfpipe's default is
# torchvision's v1.5, a different function), by name (`keras_resnet_name`).
APPLICATIONS = {r"mobilenet_v1_[\d.]+": ("MobileNet", True), r"mobilenet_v2_[\d.]+": ("MobileNetV2", True),
                "vgg16": ("VGG16", False), "vgg19": ("VGG19", False),
                "resnet50_v1": ("ResNet50", False), "resnet101_v1": ("ResNet101", False)}


def keras_resnet_name(name: str) -> str:
    """tfpipe's ResNet v1 layer name -> keras.applications': stem_conv -> conv1_conv,
    stage2_0_1_bn -> conv3_block1_1_bn, stage2_0_shortcut_conv -> conv3_block1_0_conv."""
    import re

    if name.startswith("stem_"):
        return "conv1_" + name.removeprefix("stem_")
    stage, block, unit, kind = re.fullmatch(r"stage(\d+)_(\d+)_(\w+?)_(conv|bn)", name).groups()
    return f"conv{int(stage) + 1}_block{int(block) + 1}_{'0' if unit == 'shortcut' else unit}_{kind}"


WHAT = "name a run folder (runs/NAME), a model or weights file saved by Keras (.keras, .h5), or imagenet"


def load_pretrained(model, source: str) -> list[str]:
    """Copy weights into `model`; returns the names of the layers that received them."""
    if source == "imagenet":
        return _from_applications(model)
    path = Path(source)
    if path.is_dir():
        from tfpipe.rundir import RunDir

        path = RunDir(path).float_model
        if not path.is_file():
            raise TfpipeError(f"train.pretrained: {source}: no trained model in this folder ({path} is missing)",
                              "name a run whose training finished, or " + WHAT.removeprefix("name a run folder "
                                                                                             "(runs/NAME), "))
    elif not path.is_file():
        raise TfpipeError(f"train.pretrained: {source}: not found", WHAT)
    if path.suffix not in (".keras", ".h5"):
        raise TfpipeError(f"train.pretrained: {source}: not a .keras or .h5 file, nor a run folder", WHAT)
    if path.name.endswith(".weights.h5"):  # Keras 3's weights format names variables by class, not layer
        try:
            model.load_weights(path)
        except (OSError, ValueError) as e:
            raise TfpipeError(f"train.pretrained: {source}: does not fit {model.name} ({e})".splitlines()[0],
                              "a .weights.h5 file loads whole into the same architecture; to transfer layers "
                              "by name, name a .keras model or a run folder") from None
        return [layer.name for layer in model.layers if layer.weights]
    source_weights = _source_layers(path, source)
    loaded = []
    for layer in model.layers:
        weights = source_weights.get(layer.name)
        if weights is None or not layer.weights:
            continue
        weights = fit_channels(weights, [tuple(w.shape) for w in layer.weights])
        if weights is not None:
            layer.set_weights(weights)
            loaded.append(layer.name)
    if not loaded:
        raise TfpipeError(f"train.pretrained: {source}: no layer matches {model.name} by name and weight shapes",
                          "transfer from a model of the same family")
    return loaded


def _source_layers(path: Path, source: str) -> dict[str, list[np.ndarray]]:
    """Layer name -> weights of a saved model; of a weights-only .h5 (Keras 2's save_weights),
    read from its groups."""
    from tfpipe import models

    try:
        with keras.utils.custom_object_scope(models.custom_layers()):
            source_model = keras.models.load_model(path, compile=False)
        return {layer.name: layer.get_weights() for layer in source_model.layers if layer.weights}
    except (OSError, ValueError, TypeError) as e:
        if path.suffix == ".h5":
            weights = _h5_weights(path)
            if weights:
                return weights
        raise TfpipeError(f"train.pretrained: {source}: cannot be loaded ({e})".splitlines()[0],
                          "name a model or weights file saved by Keras") from None


def _h5_weights(path: Path) -> dict[str, list[np.ndarray]]:
    """The layers of a Keras 2 HDF5 weights file (save_weights to *.h5): {layer: [arrays in order]}."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            out = {}
            for layer in group.attrs.get("layer_names", []):
                name = layer.decode() if isinstance(layer, bytes) else str(layer)
                names = group[name].attrs.get("weight_names", [])
                out[name] = [np.asarray(group[name][w.decode() if isinstance(w, bytes) else w]) for w in names]
            return {k: v for k, v in out.items() if v}
    except OSError:
        return {}


def fit_channels(weights: list[np.ndarray], shapes: list[tuple]) -> list[np.ndarray] | None:
    """`weights` shaped as `shapes`, or None when they do not fit. A convolution kernel [kh, kw,
    cin, cout] whose only difference is 1 against 3 input channels is carried over so that a grey
    image (r = g = b) gets the same response: 3 -> 1 summed over colour, 1 -> 3 repeated / 3."""
    if len(weights) != len(shapes):
        return None
    out = []
    for w, shape in zip(weights, shapes, strict=True):
        w = np.asarray(w)
        if w.shape != shape and w.ndim == 4 and len(shape) == 4 and w.shape[:2] + w.shape[3:] == shape[:2] + shape[3:]:
            if (w.shape[2], shape[2]) == (3, 1):
                w = w.sum(axis=2, keepdims=True)
            elif (w.shape[2], shape[2]) == (1, 3):
                w = np.repeat(w / 3.0, 3, axis=2)
        if w.shape != shape:
            return None
        out.append(w)
    return out


def applications_model(model, weights: str | None = "imagenet"):
    """keras.applications' counterpart of `model` (without its classifier), with `weights`."""
    import re

    found = next(((name, alpha) for pattern, (name, alpha) in APPLICATIONS.items()
                  if re.fullmatch(pattern, model.name)), None)
    if found is None:
        raise TfpipeError(f"train.pretrained: imagenet weights are not mapped for {model.name}",
                          "models with keras.applications weights: mobilenet_v1_*, mobilenet_v2_*, vgg16, vgg19, "
                          "resnet50/101 with model.args.v1: true; or name a run folder or a local .keras file")
    name, takes_alpha = found
    options = {"alpha": float(model.name.rsplit("_", 1)[1])} if takes_alpha else {}
    return getattr(keras.applications, name)(input_shape=(*model.input_shape[1:3], 3), include_top=False,
                                             weights=weights, **options)


def _from_applications(model) -> list[str]:
    import re

    try:
        source = applications_model(model)
    except TfpipeError:
        raise
    except Exception as e:  # no network, or no weights for this width: say so on one line
        text = " ".join(str(e).split())
        url = re.search(r"https?://\S+?\.h5", text)
        where = url.group(0) if url else "https://storage.googleapis.com/tensorflow/keras-applications/"
        raise TfpipeError(f"train.pretrained: imagenet: keras.applications could not download {where} "
                          f"({type(e).__name__}: {text.replace(where, 'it')[:160]})",
                          "offline, copy that file into ~/.keras/models/ from a machine that has it, or name a run "
                          "folder or a local .keras file") from None
    return copy_applications(source, model)


def copy_applications(source, model) -> list[str]:
    """keras.applications' weights into `model`: ResNets by name, the others in order."""
    if not model.name.startswith("resnet"):
        return copy_in_order(source, model)
    theirs = {layer.name: layer for layer in source.layers if layer.weights}
    return _copy_pairs([(mine, theirs.get(keras_resnet_name(mine.name))) for mine in model.layers
                        if mine.weights and mine.name not in CLASSIFIERS], source, model)


def copy_in_order(source, model) -> list[str]:
    """Copy the weights of `source`'s weighted layers into `model`'s, in order, as far as both go
    (`model` may have a classifier after them)."""
    ours = [layer for layer in model.layers if layer.weights]
    return _copy_pairs(list(zip(ours, [layer for layer in source.layers if layer.weights], strict=False)),
                       source, model)


def _copy_pairs(pairs: list, source, model) -> list[str]:
    """Each (our layer, their layer) pair's weights, through `fit_channels`, until one does not fit;
    every weighted layer of `source` must have been copied."""
    loaded = []
    for mine, other in pairs:
        weights = None if other is None else fit_channels(other.get_weights(), [tuple(w.shape) for w in mine.weights])
        if weights is None:
            break
        mine.set_weights(weights)
        loaded.append(mine.name)
    wanted = sum(1 for layer in source.layers if layer.weights)
    if len(loaded) != wanted:
        raise TfpipeError(f"train.pretrained: {source.name} does not match {model.name} layer for layer "
                          f"(stopped at {len(loaded)} of {wanted})", "check model.name and model.args")
    return loaded


# The zoo's classifier layers: they train in the frozen phase even when they were transferred.
CLASSIFIERS = ("logits", "classes")


def set_frozen(model, transferred: list[str], frozen: bool) -> None:
    """Freeze (or unfreeze) the transferred layers but the classifier. A frozen BatchNormalization
    also runs in inference mode (tf_keras), so its statistics stay those of the source model."""
    for name in transferred:
        if name not in CLASSIFIERS:
            model.get_layer(name).trainable = not frozen
