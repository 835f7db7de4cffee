"""The Edge TPU build of a trained Keras model: the same function, re-expressed in ops the Edge
TPU compiler (v16) maps, with the trained weights carried over.

The compiler cuts the graph once, at the first op it cannot map (delegates/edgetpu.py), and it is
frozen, so the model has to change. Each rewrite here but the last is exact in float (tests: within
1e-5 on random inputs), the last is exact in int8, and none needs retraining:

- LeakyReLU(a) -> PReLU with a constant, frozen alpha a (TFLite PRELU; LEAKY_RELU is not in
  Coral's table: google-coral/edgetpu#165, #272, #597);
- Conv2D(groups=g) -> SPLIT, g plain Conv2D on the kernel's slices, CONCATENATION (TFLite's grouped
  CONV_2D came after compiler 16). The per-channel layers the convolution alone feeds
  (BatchNormalization, ReLU, ...) move inside the groups, so the converter still folds each
  BatchNormalization into its group's convolution and fuses the activation;
- ShuffleNet's channel shuffle (Reshape to [H, W, g, C/g], Permute, Reshape back: a 4-D tensor
  with more than 3 dimensions above 1, which the Edge TPU cannot hold) -> one frozen 1x1 Conv2D
  whose kernel is the permutation (int8 weights 0 and 127 on a per-channel scale: exact);
- DepthToSpace(r) (the zoo's sub-pixel upsampling; DEPTH_TO_SPACE is not in Coral's table and
  Coral has "no plans" for it: google-coral/edgetpu#386) -> a frozen Conv2DTranspose, kernel r,
  stride r, whose 0/1 kernel puts each channel block at its pixel (TRANSPOSE_CONV, in the table
  since compiler 16; the zoo trains the sub-pixel form because tfmot's quantized
  Conv2DTranspose converts badly, which does not touch this build: it is calibrated, not QAT);
- SegNet's MaxUnpooling2D (EQUAL, boolean logic, SELECT_V2, DEPTH_TO_SPACE) -> the same layer in
  its `mappable` expression: MAX_POOL_2D, SPACE_TO_DEPTH, SUB and a frozen 1x1 DEPTHWISE_CONV_2D
  with a fused RELU6 for the argmax masks, MUL, ADD, RESIZE_NEAREST_NEIGHBOR. The one rewrite
  that is exact in int8 only (models/segmentation/segnet.py): its gain comes from the
  calibration images' range of the layer's input, and in float a window value within a quarter
  of an int8 step of the maximum counts partly as a tie.

The rewrite works on the functional model's config (layer entries and the tensors they read), so
it keeps every other layer, the output names and shared layers as they are, and is undone by
nothing: the rewritten model is saved and converted like any other. A model used as a layer (a
backbone, an imported application inside a Sequential) is rewritten the same way, in its place.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from tfpipe.backend import keras


@dataclass
class Change:
    """One rewrite, for the report: which layers, what they became, why."""

    layers: list[str]
    became: str
    why: str

    def line(self) -> str:
        return f"{', '.join(self.layers)} -> {self.became} ({self.why})"


# An Edge TPU build of a model with a class map keeps only it: the per-pixel SOFTMAX does not map
# (Coral: 1-D inputs only) and the class map, the argmax of the logits, does not need it.
SOFTMAX_DROPPED = ("probabilities dropped (its per-pixel SOFTMAX does not map): the build's one output is "
                   "class_map, the argmax of the logits, the same classes")


def edgetpu_target(model, calibration: np.ndarray | None,
                   class_map: bool | str) -> tuple[object, bool | str, list[Change], list[str]]:
    """Everything `--target edgetpu` changes, for convert and the lint alike: (the rewritten model,
    to_tflite's class_map setting, the rewrites, the report line of each change). A model with a
    class map (convert.class_map) keeps it alone; `model` itself comes back when no rewrite applies."""
    rewritten, changes = edgetpu_build(model, calibration)
    dropped = [SOFTMAX_DROPPED] if class_map else []
    return rewritten, ("alone" if class_map else class_map), changes, [c.line() for c in changes] + dropped


def _consumers(layers: list[dict]) -> dict[str, list[str]]:
    readers: dict[str, list[str]] = {entry["name"]: [] for entry in layers}
    for entry in layers:
        for node in entry["inbound_nodes"]:
            for source in node:
                readers[source[0]].append(entry["name"])
    return readers


def _only_reader(readers: dict[str, list[str]], name: str, outputs: set[str]) -> str | None:
    """The one layer reading `name`'s output, if exactly one does and it is not a model output."""
    found = readers.get(name, [])
    return found[0] if len(found) == 1 and name not in outputs else None


def _entry(class_name: str, name: str, config: dict, inbound: list) -> dict:
    return {"class_name": class_name, "name": name, "config": {**config, "name": name}, "inbound_nodes": [inbound]}


def _prelu(name: str, leaky: dict, inbound: list) -> dict:
    """LeakyReLU's entry as a PReLU whose alpha is the slope, one per channel (shared over H and W,
    as the Edge TPU's PRELU requires), frozen so that fine-tuning keeps it a leaky ReLU."""
    alpha = float(leaky.get("alpha", 0.3))
    return _entry("PReLU", name, {"trainable": False, "dtype": leaky.get("dtype", "float32"),
                                  "alpha_initializer": {"class_name": "Constant", "config": {"value": alpha}},
                                  "alpha_regularizer": None, "alpha_constraint": None, "shared_axes": [1, 2]},
                  inbound)


def edgetpu_build(model, calibration: np.ndarray | None = None) -> tuple[object, list[Change]]:
    """(the rewritten model with `model`'s weights, the changes); `model` itself when nothing applies.
    `calibration`: the images the build will be calibrated on, which SegNet's unpooling needs."""
    if isinstance(model, keras.Sequential):  # e.g. an imported H5: its config lists no connections
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    config = copy.deepcopy(model.get_config())
    layers: list[dict] = config["layers"]
    by_name = {entry["name"]: entry for entry in layers}
    outputs = {o[0] for o in config["output_layers"]}
    readers = _consumers(layers)
    weights: dict[str, list[np.ndarray]] = {}  # new layer name -> its weights
    replaced: dict[str, list[dict]] = {}  # old layer name -> the entries standing in its place
    dropped: set[str] = set()
    changes: list[Change] = []
    # (a layer shared between several calls is left as is below, so it gets no gain either)
    gains = _unpooling_gains(model, [e["name"] for e in layers if e["class_name"] == "MaxUnpooling2D"
                                     and not e["config"].get("mappable") and len(e["inbound_nodes"]) == 1],
                             calibration)

    for entry in layers:
        name, kind, cfg = entry["name"], entry["class_name"], entry["config"]
        if name in dropped or name in replaced or len(entry["inbound_nodes"]) != 1:
            continue  # a layer shared between several calls keeps its one set of weights: left as is
        inbound = entry["inbound_nodes"][0]
        if kind == "LeakyReLU":
            alpha = float(cfg.get("alpha", 0.3))
            channels = model.get_layer(name).output_shape[-1]
            weights[name] = [np.full((1, 1, channels), alpha, np.float32)]
            replaced[name] = [_prelu(name, cfg, inbound)]
            changes.append(Change([name], f"PReLU(alpha={alpha:g}, frozen)", "LEAKY_RELU is not in Coral's op table"))
        elif kind == "Conv2D" and cfg.get("groups", 1) > 1:
            replaced.update(_split_groups(model, entry, by_name, readers, outputs, weights, dropped, changes))
        elif kind == "DepthToSpace":
            replaced[name] = [_depth_to_space(model, entry, weights, changes)]
        elif name in gains:
            replaced[name] = [{**entry, "config": {**cfg, "mappable": True, "gain": gains[name]}}]
            changes.append(Change([name], f"argmax masks by SUB and a frozen 1x1 DEPTHWISE_CONV_2D (gain "
                                  f"{gains[name]:g}, from the calibrated range) + RELU6, placed by "
                                  "RESIZE_NEAREST_NEIGHBOR and MUL",
                                  "EQUAL, SELECT_V2 and DEPTH_TO_SPACE are not in Coral's op table"))
        elif kind in NESTED:
            inner, inner_changes = edgetpu_build(model.get_layer(name), _inner_calibration(model, entry, calibration))
            if inner_changes:
                replaced[name] = [{**entry, "class_name": "Functional", "config": inner.get_config()}]
                weights[name] = inner.get_weights()
                changes += [Change([f"{name}/{layer}" for layer in c.layers], c.became, c.why) for c in inner_changes]
        elif kind == "Reshape":
            shuffle = _shuffle(model, entry, by_name, readers, outputs, weights, changes)
            if shuffle:
                first, permute, last, conv = shuffle
                replaced[first] = []
                replaced[permute] = []
                replaced[last] = [conv]
    if not changes:
        return model, []
    config["layers"] = [new for entry in layers if entry["name"] not in dropped
                        for new in replaced.get(entry["name"], [entry])]
    from tfpipe import models

    rebuilt = keras.Model.from_config(config, custom_objects=models.custom_layers())
    for layer in rebuilt.layers:
        if layer.name in weights:
            layer.set_weights(weights[layer.name])
        elif layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return rebuilt, changes


# A model used as a layer (a backbone inside a detector, an imported application inside a
# Sequential): rewritten like the outer model, and put back in its place.
NESTED = ("Functional", "Sequential", "Model")


def _inner_calibration(model, entry: dict, calibration: np.ndarray | None) -> np.ndarray | None:
    """What the nested model of `entry` receives from the calibration images, when it needs it
    (only SegNet's unpooling does: the forward pass is not made for the others). Read from the
    entry's call (a nested model's own `.input` is its construction's Input, not what reaches it)."""
    if calibration is None or not _has_unpooling(model.get_layer(entry["name"])):
        return None
    reached = []
    for source, node, index, *_ in entry["inbound_nodes"][0]:
        out = model.get_layer(source).get_output_at(node)
        reached.append(out[index] if isinstance(out, (list, tuple)) else out)
    return keras.Model(model.inputs, reached).predict(calibration, batch_size=16, verbose=0)


def _has_unpooling(model) -> bool:
    return any(type(layer).__name__ == "MaxUnpooling2D" or (isinstance(layer, keras.Model) and _has_unpooling(layer))
               for layer in model.layers)


def _unpooling_gains(model, names: list[str], calibration: np.ndarray | None) -> dict[str, float]:
    """Each MaxUnpooling2D's gain for its mappable expression, from its input's range over the
    calibration images (what the converter's calibration will see)."""
    if not names:
        return {}
    from tfpipe.models.segmentation.segnet import MaxUnpooling2D

    if calibration is None:
        raise ValueError(f"the Edge TPU build of {', '.join(names)} needs the calibration images (its gain is "
                         "set from its input's int8 step)")
    probe = keras.Model(model.inputs, [model.get_layer(name).input[0] for name in names])
    seen = probe.predict(calibration, batch_size=16, verbose=0)
    seen = seen if isinstance(seen, list) else [seen]
    return {name: MaxUnpooling2D.gain_for(float(x.min()), float(x.max())) for name, x in zip(names, seen, strict=True)}


# Layers that act on each channel alone: they can run inside each group, before the concatenation,
# so every group's convolution requantizes once, to the range of what the concatenation receives
# (a ReLU after the concatenation would leave the groups the wider pre-activation range: measured
# 2 output steps off the grouped model in int8, against 1 with the ReLU inside).
PER_CHANNEL = ("BatchNormalization", "ReLU", "LeakyReLU", "Activation")


def _per_channel(entry: dict) -> bool:
    if entry["class_name"] == "Activation":
        return entry["config"].get("activation") in ("relu", "relu6", "linear")
    if entry["class_name"] == "BatchNormalization":
        return entry["config"].get("axis") in (-1, [-1], 3, [3])
    return entry["class_name"] in PER_CHANNEL


def _split_groups(model, entry, by_name, readers, outputs, weights, dropped, changes) -> dict[str, list[dict]]:
    """Conv2D(groups=g) and the per-channel layers it alone feeds (BatchNormalization, ReLU, ...) as
    ChannelSplit -> g x (Conv2D -> the same layers on the group's channels) -> Concatenate."""
    from tfpipe.models.blocks import ChannelSplit

    name, cfg = entry["name"], entry["config"]
    groups = int(cfg["groups"])
    kernel, *bias = model.get_layer(name).get_weights()
    per_group = kernel.shape[-1] // groups
    chain, last = [], name
    while True:
        reader = _only_reader(readers, last, outputs)
        if not reader or len(by_name[reader]["inbound_nodes"]) != 1 or not _per_channel(by_name[reader]):
            break
        chain.append(by_name[reader])
        last = reader
    split = f"{name}_split"
    new = [_entry(ChannelSplit.__name__, split, {"trainable": cfg.get("trainable", True), "dtype": cfg.get("dtype"),
                                                 "parts": groups}, entry["inbound_nodes"][0])]
    joined = []
    for g in range(groups):
        part = slice(g * per_group, (g + 1) * per_group)
        previous = f"{name}_g{g}"
        new.append(_entry("Conv2D", previous, {**cfg, "filters": per_group, "groups": 1}, [[split, 0, g, {}]]))
        weights[previous] = [kernel[..., part], *(b[part] for b in bias)]
        for layer in chain:
            grouped = f"{layer['name']}_g{g}"
            if layer["class_name"] == "LeakyReLU":
                new.append(_prelu(grouped, layer["config"], [[previous, 0, 0, {}]]))
                weights[grouped] = [np.full((1, 1, per_group), float(layer["config"].get("alpha", 0.3)), np.float32)]
            else:
                new.append(_entry(layer["class_name"], grouped, layer["config"], [[previous, 0, 0, {}]]))
                held = model.get_layer(layer["name"]).get_weights()
                if held:
                    weights[grouped] = [w[part] for w in held]
            previous = grouped
        joined.append([previous, 0, 0, {}])
    # the concatenation takes the name its readers ask for
    new.append(_entry("Concatenate", last, {"trainable": True, "dtype": cfg.get("dtype"), "axis": -1}, joined))
    dropped.update(layer["name"] for layer in chain)
    inside = "".join(f" -> {layer['class_name']}" for layer in chain)
    changes.append(Change([name, *(layer["name"] for layer in chain)],
                          f"SPLIT, {groups} x (CONV_2D{inside}), CONCATENATION",
                          "grouped CONV_2D is not in compiler 16's op table"))
    return {name: new}


def _frozen(class_name: str, name: str, dtype, inbound: list, **config) -> dict:
    """A weight-only layer whose kernel is set after building (never through an initializer:
    the array would land in the config), kept out of training."""
    return _entry(class_name, name, {"trainable": False, "dtype": dtype, "padding": "valid",
                                     "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
                                     "activation": "linear", "use_bias": False,
                                     "kernel_initializer": {"class_name": "Zeros", "config": {}},
                                     "bias_initializer": {"class_name": "Zeros", "config": {}},
                                     "kernel_regularizer": None, "bias_regularizer": None,
                                     "activity_regularizer": None, "kernel_constraint": None,
                                     "bias_constraint": None, **config}, inbound)


def _depth_to_space(model, entry, weights, changes) -> dict:
    """DepthToSpace(r) as a frozen Conv2DTranspose (kernel r, stride r): TensorFlow's DCR order puts
    input channel (i * r + j) * C + c at output pixel (i, j) of each r x r cell, channel c."""
    name, block = entry["name"], int(entry["config"]["block"])
    channels = model.get_layer(name).output_shape[-1]
    kernel = np.zeros((block, block, channels, block * block * channels), np.float32)  # [kh, kw, out, in]
    for i in range(block):
        for j in range(block):
            for c in range(channels):
                kernel[i, j, c, (i * block + j) * channels + c] = 1.0
    weights[name] = [kernel]
    changes.append(Change([name], f"a frozen {block}x{block} TRANSPOSE_CONV, stride {block}, placing the channel "
                          "blocks", "DEPTH_TO_SPACE is not in Coral's op table"))
    return _frozen("Conv2DTranspose", name, entry["config"].get("dtype"), entry["inbound_nodes"][0],
                   filters=channels, kernel_size=[block, block], strides=[block, block], output_padding=None)


def _shuffle(model, entry, by_name, readers, outputs, weights, changes):
    """Reshape [H, W, g, C/g] -> Permute (1, 2, 4, 3) -> Reshape [H, W, C] as a frozen 1x1 Conv2D:
    (first name, permute name, last name, the conv's entry), or None when `entry` does not start one."""
    first = entry["name"]
    shape = tuple(entry["config"]["target_shape"])
    permute = _only_reader(readers, first, outputs)
    if len(shape) != 4 or not permute or by_name[permute]["class_name"] != "Permute" or \
            tuple(by_name[permute]["config"]["dims"]) != (1, 2, 4, 3):
        return None
    last = _only_reader(readers, permute, outputs)
    h, w, groups, per_group = shape
    channels = groups * per_group
    if not last or by_name[last]["class_name"] != "Reshape" or \
            tuple(by_name[last]["config"]["target_shape"]) != (h, w, channels):
        return None
    # input channel g * C/g + k lands at output channel k * g + g (the transpose of a g x C/g grid)
    kernel = np.zeros((1, 1, channels, channels), np.float32)
    for g in range(groups):
        for k in range(per_group):
            kernel[0, 0, g * per_group + k, k * groups + g] = 1.0
    conv = _frozen("Conv2D", last, entry["config"].get("dtype"), entry["inbound_nodes"][0], filters=channels,
                   kernel_size=[1, 1], strides=[1, 1])
    weights[last] = [kernel]
    changes.append(Change([first, permute, last], f"a frozen 1x1 CONV_2D permuting {channels} channels",
                          "the shuffle's 4-D [H, W, g, C/g] tensor has more than 3 dimensions above 1"))
    return first, permute, last, conv
