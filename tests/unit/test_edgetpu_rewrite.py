"""The Edge TPU build (tfpipe.delegates.rewrite): each rewrite is the same function in float and in
int8, and the rewritten graph maps whole onto the Edge TPU where the original was cut."""

import tempfile
from pathlib import Path

import numpy as np
import pytest

from tfpipe.delegates import edgetpu
from tfpipe.runtime.graph import read_graph


def _randomize_batchnorm(model, seed: int = 0) -> None:
    """Statistics far from the initial ones, so a BatchNormalization split wrongly shows."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        short = w.name.split("/")[-1]
        if short.startswith("moving_variance"):
            w.assign(rng.uniform(0.5, 2.0, w.shape))
        elif short.startswith(("moving_mean", "beta")):
            w.assign(rng.normal(0, 0.5, w.shape))
        elif short.startswith("gamma"):
            w.assign(rng.normal(1, 0.3, w.shape))


def _model(kind: str, seed: int = 0):
    """A tiny model whose output is one construct the Edge TPU compiler cuts at (so the int8
    comparison measures the rewrite itself, not how later layers amplify a step)."""
    from tfpipe.backend import keras
    from tfpipe.models.blocks import ChannelSplit, channel_shuffle, conv_bn
    from tfpipe.models.segmentation.common import transposed_conv

    keras.utils.set_random_seed(seed)
    L = keras.layers
    i = keras.Input((12, 12, 3), name="images")
    x = conv_bn(i, 12, 3, act="relu", name="stem")
    if kind == "leaky":
        x = conv_bn(x, 12, 3, act="leaky", name="dark")
    elif kind == "grouped":
        x = conv_bn(x, 12, 1, groups=3, act="relu", name="group")
    elif kind == "subpixel":
        x = transposed_conv(x, 4, 4, 2, name="up")
    elif kind == "unpool":  # SegNet's: the ReLU stem's all-zero windows are ties, placed at the first position
        from tfpipe.models.segmentation.segnet import MaxUnpooling2D

        values = conv_bn(L.MaxPooling2D(2, name="pool")(x), 12, 3, act="relu", name="dec")
        x = MaxUnpooling2D(name="unpool")([x, values])
    elif kind == "shuffle":
        a, b = ChannelSplit(2, name="split")(x)
        x = channel_shuffle(L.Concatenate(name="join")([a, conv_bn(b, 6, 1, name="branch")]), 3, "unit")
    model = keras.Model(i, x)
    _randomize_batchnorm(model, seed)
    return model


def _int8(model, calibration) -> tuple[Path, dict]:
    from tfpipe.convert.tflite import to_tflite
    from tfpipe.runtime.model import TFLiteModel

    path = Path(tempfile.mkdtemp()) / "model.tflite"
    path.write_bytes(to_tflite(model, "int8", "uint8", calibration))
    return path, TFLiteModel(str(path))


CUTS = {"leaky": "LEAKY_RELU", "grouped": "CONV_2D", "shuffle": "RESHAPE", "subpixel": "DEPTH_TO_SPACE",
        "unpool": "EQUAL"}


def _near_ties(model, images, gain: float) -> np.ndarray:
    """Per output cell of the unpooling: whether its 2x2 window of the layer's input holds a value
    less than 6 / gain (a quarter of an int8 step) below the maximum, but not equal to it."""
    from tfpipe.backend import keras

    x = keras.Model(model.inputs, model.get_layer("unpool").input[0]).predict(images, verbose=0)
    n, h, w, c = x.shape
    windows = x.reshape(n, h // 2, 2, w // 2, 2, c)
    gaps = windows.max(axis=(2, 4), keepdims=True) - windows
    near = ((gaps > 0) & (gaps < 6 / gain)).any(axis=(2, 4), keepdims=True)
    return np.broadcast_to(near, windows.shape).reshape(x.shape)


@pytest.mark.parametrize("kind", sorted(CUTS))
def test_each_rewrite_is_exact_in_float_within_a_step_in_int8_and_maps_whole(kind):
    """SegNet's unpooling is exact in int8 (its argmax masks are integer arithmetic there); in float
    it may differ only in windows with a value within a quarter of an int8 step of the maximum."""
    from tfpipe.delegates.rewrite import edgetpu_build

    model = _model(kind)
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (64, 12, 12, 3)).astype(np.float32)
    calibration = rng.uniform(-1, 1, (32, 12, 12, 3)).astype(np.float32)
    rewritten, changes = edgetpu_build(model, calibration)
    assert changes and rewritten is not model
    assert rewritten.output_names == model.output_names
    before, after = model.predict(images, verbose=0), rewritten.predict(images, verbose=0)
    differ = np.abs(after - before) > 1e-5
    if kind == "unpool":
        near = _near_ties(model, images, rewritten.get_layer("unpool").gain)
        assert not (differ & ~near).any() and near.mean() < 0.02, (differ.sum(), near.mean())
    else:
        assert not differ.any(), np.abs(after - before).max()
    assert before.std(axis=0).max() > 0.1  # the outputs follow the images: not a constant model

    (cpu_path, cpu), (tpu_path, tpu) = _int8(model, calibration), _int8(rewritten, calibration)
    [(name, spec)] = cpu.outputs.items()
    assert tpu.outputs[name]["scale"] == spec["scale"]  # the same calibrated range: steps compare
    got = {build: m.predict({"images": images})[name] for build, m in (("cpu", cpu), ("tpu", tpu))}
    assert np.abs(got["cpu"] - got["tpu"]).max() <= spec["scale"] * 1.001

    cut, whole = edgetpu.predict(read_graph(cpu_path)), edgetpu.predict(read_graph(tpu_path))
    assert cut["first_unmapped"]["op"] == CUTS[kind] and cut["ops"]["share"] < 1.0
    assert whole["first_unmapped"] is None and whole["ops"]["share"] == 1.0


def test_a_model_without_anything_to_rewrite_comes_back_as_it_is():
    from tfpipe.delegates.rewrite import edgetpu_build

    model = _model("plain")
    assert edgetpu_build(model) == (model, [])


def test_a_grouped_convolution_read_by_two_layers_keeps_its_batchnorm_after_the_concatenation():
    """The BatchNormalization is split with the groups only when it alone reads the convolution."""
    from tfpipe.backend import keras
    from tfpipe.delegates.rewrite import edgetpu_build

    L = keras.layers
    i = keras.Input((8, 8, 4), name="images")
    conv = L.Conv2D(8, 3, padding="same", groups=2, use_bias=True, name="gconv")(i)
    both = L.Add(name="add")([L.BatchNormalization(name="bn")(conv), conv])
    model = keras.Model(i, L.Dense(3, activation="softmax", name="probabilities")(L.GlobalAveragePooling2D()(both)))
    _randomize_batchnorm(model)
    rewritten, changes = edgetpu_build(model)
    assert [c.layers for c in changes] == [["gconv"]]
    assert {"gconv_g0", "gconv_g1", "bn"} <= {layer.name for layer in rewritten.layers}
    images = np.random.default_rng(2).normal(size=(8, 8, 8, 4)).astype(np.float32)
    np.testing.assert_allclose(rewritten.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5)


def test_a_sequential_model_is_rewritten_too():
    """An imported H5 is often Sequential, whose config lists no connections between layers."""
    from tfpipe.backend import keras
    from tfpipe.delegates.rewrite import edgetpu_build

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.LeakyReLU(0.2),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    rewritten, changes = edgetpu_build(model)
    assert [c.became for c in changes] == ["PReLU(alpha=0.2, frozen)"]
    images = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(rewritten.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5)


def test_a_model_nested_as_a_layer_is_rewritten_with_what_reaches_it():
    """A backbone used as a layer (here SegNet's unpooling inside a Sequential, after a layer that
    rescales the images) is rewritten in place: its gain comes from the tensor that reaches it,
    and the int8 build maps whole within one step of the original."""
    from tfpipe.backend import keras
    from tfpipe.delegates.rewrite import edgetpu_build
    from tfpipe.models.segmentation.segnet import MaxUnpooling2D

    inner = _model("unpool")
    model = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Rescaling(3.0, name="gain3"), inner,
                              keras.layers.LeakyReLU(0.2, name="outer_leaky")])
    calibration = np.random.default_rng(1).uniform(-1, 1, (32, 12, 12, 3)).astype(np.float32)
    rewritten, changes = edgetpu_build(model, calibration)
    assert sorted(c.layers[0] for c in changes) == [f"{inner.name}/unpool", "outer_leaky"]
    seen = keras.Model(inner.inputs, inner.get_layer("unpool").input[0]).predict(calibration * 3.0, verbose=0)
    gain = rewritten.get_layer(inner.name).get_layer("unpool").gain
    assert gain == MaxUnpooling2D.gain_for(float(seen.min()), float(seen.max()))

    (cpu_path, cpu), (tpu_path, tpu) = _int8(model, calibration), _int8(rewritten, calibration)
    [(name, spec)] = cpu.outputs.items()
    images = np.random.default_rng(2).uniform(-1, 1, (32, 12, 12, 3)).astype(np.float32)
    got = [m.predict({next(iter(m.inputs)): images})[name] for m in (cpu, tpu)]
    assert np.abs(got[0] - got[1]).max() <= spec["scale"] * 1.001
    assert edgetpu.predict(read_graph(cpu_path))["first_unmapped"] is not None
    assert edgetpu.predict(read_graph(tpu_path))["first_unmapped"] is None


@pytest.mark.parametrize("mappable", [False, True])
def test_max_unpooling_puts_each_value_at_its_windows_first_maximum(mappable):
    """Both expressions of SegNet's MaxUnpooling2D: ties (all-zero ReLU windows are common) go to
    the first maximum in row-major order, as MaxPoolWithArgmax counts, and a value one int8 step
    (7 / 255) below the maximum loses."""
    from tfpipe.models.segmentation.segnet import MaxUnpooling2D

    before = np.array([[1, 1, 0, 0, 2.0, 5],
                       [0, 1, 0, 0, 7, 7 - 7 / 255]], np.float32).reshape(1, 2, 6, 1)
    values = np.array([3, 4, -2], np.float32).reshape(1, 1, 3, 1)
    expected = np.array([[3, 0, 4, 0, 0, 0],
                         [0, 0, 0, 0, -2, 0]], np.float32).reshape(1, 2, 6, 1)
    gain = MaxUnpooling2D.gain_for(0.0, 7.0)
    assert gain == 1024 and gain * 7 / 255 >= 6 * 4  # a power of two; one step reaches 6 four times over
    layer = MaxUnpooling2D(mappable=mappable, gain=gain if mappable else None)
    np.testing.assert_array_equal(layer([before, values]).numpy(), expected)
    assert MaxUnpooling2D.from_config(layer.get_config()).get_config() == layer.get_config()
    if not mappable:
        with pytest.raises(ValueError, match="needs its gain"):
            MaxUnpooling2D(mappable=True)


def test_the_cpu_part_after_the_cut_is_cut_out_and_computes_what_the_whole_model_does():
    """delegates/edgetpu.cpu_part_latency times the ops after the compiler's cut on their own: the
    part cut out of the file must give the whole model's outputs from what reaches the cut."""
    from tfpipe.delegates.rewrite import edgetpu_build
    from tfpipe.runtime.graph import part_bytes
    from tfpipe.runtime.model import TFLiteModel

    model = _model("leaky")
    rng = np.random.default_rng(3)
    calibration, images = (rng.uniform(-1, 1, (n, 12, 12, 3)).astype(np.float32) for n in (32, 8))
    cut_path, whole = _int8(model, calibration)
    graph = read_graph(cut_path)
    ops, inputs, outputs = edgetpu.cpu_part(graph, edgetpu.predict(graph))
    assert graph.ops[ops[0]].kind == "LEAKY_RELU" and ops == list(range(ops[0], len(graph.ops)))
    assert outputs == list(graph.outputs)
    part_path = cut_path.with_name("part.tflite")
    part_path.write_bytes(part_bytes(cut_path, ops, inputs, outputs))
    # both on the builtin kernels keep_tensors runs (XNNPACK's may round a step apart from them)
    part, kept = TFLiteModel(str(part_path), keep_tensors=True), TFLiteModel(str(cut_path), keep_tensors=True)
    assert len(part.inputs) == len(inputs) and not graph.tensors[inputs[0]].constant
    reached = kept.tensors({"images": images}, inputs)
    [(name, _)] = whole.outputs.items()
    got = part.predict({f"tensor_{t}": reached[t] for t in inputs})[f"tensor_{outputs[0]}"]
    np.testing.assert_array_equal(got, kept.predict({"images": images})[name])

    timed = edgetpu.cpu_part_latency(cut_path, images[:2], runs=3)
    assert timed["ops"][0] == "LEAKY_RELU" and timed["ms"] > 0 and timed["images"] == 2
    mapped_path, _ = _int8(edgetpu_build(model)[0], calibration)
    assert edgetpu.cpu_part_latency(mapped_path, images[:2]) == {"ms": 0.0, "ops": [], "images": 0}


def test_the_cpu_part_is_fed_each_images_tensor_when_the_cut_tensor_has_no_batch_axis():
    """Faster R-CNN's cut reads proposals [32, 4]: each image's tensor at the cut must reach the part
    whole (taking the first row of N images' tensors laid end to end made its GATHER index out of
    bounds)."""
    from tfpipe.backend import keras, tf

    keras.utils.set_random_seed(0)
    i = keras.Input((6, 6, 3), batch_size=1, name="images")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(i)
    x = keras.layers.Lambda(lambda t: tf.reshape(t, [36, 4]), name="rows")(x)  # no batch axis
    x = keras.layers.LeakyReLU(0.1, name="leaky")(x)
    model = keras.Model(i, keras.layers.Lambda(lambda t: tf.reshape(t, [1, 144]), name="flat")(x))
    rng = np.random.default_rng(4)
    calibration, images = (rng.uniform(-1, 1, (n, 6, 6, 3)).astype(np.float32) for n in (16, 3))
    path, _ = _int8(model, calibration)
    graph = read_graph(path)
    _, inputs, _ = edgetpu.cpu_part(graph, edgetpu.predict(graph))
    assert [graph.tensors[t].shape for t in inputs] == [(36, 4)]
    timed = edgetpu.cpu_part_latency(path, images, runs=2)
    assert timed["ops"][0] == "LEAKY_RELU" and timed["images"] == 3 and timed["ms"] > 0
