"""Delegate checks on hand-built int8 graphs whose cut points are known, and the compiler-log path."""

import json
import os
import stat

import numpy as np
import pytest

from tests.conftest import run_cli
from tfpipe import delegates
from tfpipe.delegates import edgetpu
from tfpipe.errors import TfpipeError
from tfpipe.runtime.graph import read_graph


def _convert(model, path, int8=True, fixed_batch=True):
    from tfpipe.backend import tf
    from tfpipe.convert.tflite import variables_of

    if fixed_batch:
        spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
        fn = tf.function(lambda x: model(x)).get_concrete_function(spec)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], variables_of(model))
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        shape = [1, *model.input_shape[1:]]
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rng.random(shape, np.float32)] for _ in range(4))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    path.write_bytes(converter.convert())
    return path


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """int8 models, each with one known reason for the Edge TPU compiler to cut the graph."""
    from tfpipe.backend import keras

    layers, out = keras.layers, tmp_path_factory.mktemp("graphs")

    def conv(x, n=8, name=None):
        return layers.Conv2D(n, 3, padding="same", activation="relu", name=name)(x)

    built = {}
    i = keras.Input((16, 16, 3))
    x = layers.Permute((2, 1, 3), name="swap_hw")(conv(i, name="first"))
    built["transpose"] = keras.Model(i, conv(x), name="transpose_mid")
    i = keras.Input((16, 16, 8))
    x = layers.Reshape((16, 16, 2, 4), name="groups5d")(conv(i))
    x = layers.Reshape((16, 16, 8))(layers.Permute((1, 2, 4, 3), name="shuffle")(x))
    built["reshape5d"] = keras.Model(i, conv(x), name="reshape5d")
    i = keras.Input((128, 128, 3))
    x = layers.UpSampling2D(2, interpolation="bilinear", name="up_big")(conv(i, 4))
    built["resize_big"] = keras.Model(i, conv(x, 4), name="resize_big")
    i = keras.Input((64, 64, 3))  # the same resize at a size reported to map
    x = layers.UpSampling2D(2, interpolation="bilinear", name="up_small")(conv(i, 4))
    built["resize_small"] = keras.Model(i, conv(x, 4), name="resize_small")
    i = keras.Input((16, 16, 3))
    x = layers.LeakyReLU(0.1, name="leaky")(conv(i))
    built["leaky"] = keras.Model(i, conv(x), name="leaky")
    i = keras.Input((512, 512, 3))  # a 512x512x36 activation: 9 MiB, more than the on-chip 8 MiB
    built["big"] = keras.Model(i, conv(i, 36, name="wide"), name="big")
    paths = {name: _convert(model, out / f"{name}.tflite") for name, model in built.items()}
    i = keras.Input((16, 16, 3))
    paths["dynamic"] = _convert(keras.Model(i, conv(conv(i)), name="dyn"), out / "dynamic.tflite", fixed_batch=False)
    i = keras.Input((16, 16, 3))
    paths["float"] = _convert(keras.Model(i, conv(i), name="fp"), out / "float.tflite", int8=False)
    return paths


@pytest.mark.parametrize("name, index, kind, layer, reason", [
    ("transpose", 2, "TRANSPOSE", "swap_hw", "transpose"),
    ("reshape5d", 2, "RESHAPE", "groups5d", "only the 3 innermost dimensions may exceed 1"),
    ("resize_big", 2, "RESIZE_BILINEAR", "up_big", "256x256 output"),
    ("dynamic", 0, "QUANTIZE", None, "dynamic shape [-1, 16, 16, 3]"),
    ("leaky", 2, "LEAKY_RELU", "leaky", "not in the Edge TPU's op table"),
])
def test_edge_tpu_checker_finds_the_known_cut_point(graphs, name, index, kind, layer, reason):
    report = edgetpu.predict(read_graph(graphs[name]))
    first = report["first_unmapped"]
    assert (first["index"], first["op"]) == (index, kind)
    assert reason in first["reason"]
    assert first["rewrite"]
    if layer:
        assert first["keras_layers"][0] == layer
    # the compiler partitions once: everything before the cut is mapped, nothing after it
    assert [row["mapped"] for row in report["per_op"]] == [i < index for i in range(len(report["per_op"]))]
    assert report["ops"]["mapped"] == index


def test_a_resize_at_a_mappable_size_maps_and_mac_shares_add_up(graphs):
    report = edgetpu.predict(read_graph(graphs["resize_small"]))
    assert report["first_unmapped"] is None and report["ops"]["share"] == 1.0
    # conv 64x64x3->4 then 128x128x4->4, both 3x3: MACs counted from the static shapes
    assert report["macs"]["total"] == 64 * 64 * 4 * 27 + 128 * 128 * 4 * 36
    cut = edgetpu.predict(read_graph(graphs["resize_big"]))
    assert cut["macs"]["mapped"] == 128 * 128 * 4 * 27  # only the conv before the resize
    assert cut["macs"]["share"] == pytest.approx(27 / (27 + 4 * 36))


def test_a_share_reads_100_percent_only_when_it_is_whole():
    """FCN-8s' CPU build maps 99.95 % of its MACs before its DEPTH_TO_SPACE cut: not 100.0 %."""
    assert edgetpu.percent(0.9995) == "99.9%" and edgetpu.percent(0.99953) == "99.9%"
    assert edgetpu.percent(1.0) == "100.0%" and edgetpu.percent(0.058) == "5.8%"
    assert edgetpu.percent(0.996, 0) == "99%" and edgetpu.percent(1.0, 0) == "100%"
    assert edgetpu.percent(0.825, 0) == "82%"


def test_an_activation_larger_than_the_on_chip_memory_is_warned_about_not_cut(graphs):
    big = edgetpu.predict(read_graph(graphs["big"]))
    assert big["first_unmapped"] is None  # the compiler fails the whole model or maps it: no cut to predict
    largest = big["largest_activation"]
    assert largest["shape"] == [1, 512, 512, 36] and largest["bytes"] == 512 * 512 * 36
    assert largest["over_on_chip_memory"]
    [line] = [line for line in edgetpu.summary_lines(big) if "largest activation" in line]
    assert "9.0 MiB, more than its 8 MiB of on-chip memory" in line and "edgetpu#176" in line
    small = edgetpu.predict(read_graph(graphs["resize_small"]))
    largest = small["largest_activation"]
    assert largest["shape"] == [1, 128, 128, 4] and not largest["over_on_chip_memory"]
    assert not any("largest activation" in line for line in edgetpu.summary_lines(small))


def test_a_float_model_is_refused_outright(graphs):
    report = edgetpu.predict(read_graph(graphs["float"]))
    assert not report["compilable"] and report["ops"]["mapped"] == 0
    assert "not 8-bit quantized" in report["first_unmapped"]["reason"]


def test_keras_layer_names_come_from_the_fused_tensor_name():
    name = "m/quant_b_relu6/Relu6;m/quant_b_bn/FusedBatchNormV3;m/quant_b_conv/Conv2D1"
    assert edgetpu.keras_layers(name) == ["b_conv", "b_bn", "b_relu6"]
    assert edgetpu.keras_layers("m/quant_s/Reshape;m/quant_prev/MovingAvgQuantize/FakeQuantWithMinMaxVars") == ["s"]


COMPILER_LOG = """Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 12 ms.

Input model: {model}
Number of Edge TPU subgraphs: 1
Total number of operations: 5
Operation log: x.log

Number of operations that will run on Edge TPU: 2
Number of operations that will run on CPU: 3

Operator                       Count      Status

CONV_2D                        1          Mapped to Edge TPU
CONV_2D                        1          More than one subgraph is not supported
QUANTIZE                       1          Mapped to Edge TPU
QUANTIZE                       1          More than one subgraph is not supported
TRANSPOSE                      1          {limitation}
"""


def test_compiler_log_is_parsed_and_compared_with_the_prediction(graphs, tmp_path, monkeypatch):
    """A stand-in edgetpu_compiler printing the real tool's `-s` layout; the real one is not
    installable here (no package registry carries it)."""
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "edgetpu_compiler"
    log = COMPILER_LOG.format(model="transpose.tflite", limitation=edgetpu.LIMITATION)
    copy = 'cp "$4" "$3/model_edgetpu.tflite"'  # called as: -s -o OUT MODEL
    fake.write_text(f"#!/bin/sh\n{copy}\ncat <<'EOF'\n{log}EOF\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    model = tmp_path / "model_int8.tflite"
    model.write_bytes(graphs["transpose"].read_bytes())
    report = delegates.check(model, "edgetpu")
    compiler = report["compiler"]
    assert compiler["version"] == "16.0.384591198"
    assert (compiler["mapped"], compiler["cpu"], compiler["total"]) == (2, 3, 5)
    assert compiler["operators"][-1] == {"op": "TRANSPOSE", "count": 1, "status": edgetpu.LIMITATION}
    assert compiler["agrees"] is True
    assert (tmp_path / "model_int8_edgetpu.tflite").is_file()
    # the prediction's own table uses the compiler's words, so the two read side by side
    predicted = {(r["op"], r["status"]): r["count"] for r in report["operators"]}
    assert predicted[("TRANSPOSE", edgetpu.LIMITATION)] == 1
    assert predicted[("CONV_2D", edgetpu.AFTER_CUT)] == 1


def test_gpu_and_nnapi_predictions(graphs, tmp_path):
    from tfpipe.backend import keras, tf

    i = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3)(i)
    odd = keras.layers.Lambda(lambda t: tf.math.floormod(tf.reverse(t, axis=[1]), 2.0))(x)
    path = _convert(keras.Model(i, odd), tmp_path / "odd.tflite", int8=False)
    gpu = delegates.check(path, "gpu")
    assert gpu["unsupported_ops"] == ["FLOOR_MOD", "REVERSE_V2"]
    assert "compatible" in gpu["analyzer"]
    nnapi = delegates.check(path, "nnapi")
    assert nnapi["unsupported_ops"] == ["FLOOR_MOD", "REVERSE_V2"] and nnapi["min_android_api"] == 27
    int8 = delegates.check(graphs["resize_small"], "nnapi")
    assert int8["signed_int8"] and int8["min_android_api"] == 30 and not int8["unsupported_ops"]
    assert delegates.check(graphs["leaky"], "gpu")["unsupported_ops"] == []


def test_check_cli_writes_reports_and_refuses_what_is_not_a_model(graphs, tmp_path, capsys):
    model = tmp_path / "model_int8.tflite"
    model.write_bytes(graphs["leaky"].read_bytes())
    assert run_cli("tfpipe.check", [str(model), "--target", "edgetpu"]) == 0
    report = json.loads((tmp_path / "compat_edgetpu.json").read_text())
    assert report["format"] == "tfpipe-compat/1" and report["first_unmapped"]["op"] == "LEAKY_RELU"
    assert "graph cut at op 2 LEAKY_RELU (Keras layer leaky)" in capsys.readouterr().out
    bad = tmp_path / "notes.tflite"
    bad.write_text("not a model")
    assert run_cli("tfpipe.check", [str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "notes.tflite: not a TFLite model" in err
    assert run_cli("tfpipe.check", [str(tmp_path / "missing.tflite")]) == 2
    assert "model file not found" in capsys.readouterr().err


def test_a_config_lint_for_the_edge_tpu_also_lints_its_edge_tpu_build(capsys):
    """`check --config` on ShuffleNet v1 (grouped 1x1 convolutions, channel shuffle): the CPU build
    is cut at its first grouped CONV_2D, the Edge TPU build `convert --target edgetpu` makes maps
    whole. Nothing is written: the lint's models are scratch files."""
    from tests.conftest import REPO

    config = REPO / "configs" / "zoo" / "shufflenet_v1_g3.yaml"
    assert run_cli("tfpipe.check", ["--config", str(config), "--target", "edgetpu"]) == 0
    printed = capsys.readouterr().out
    cpu, tpu = printed.split("Edge TPU build (")
    assert "graph cut at op" in cpu and "CONV_2D with 3 groups (grouped convolution)" in cpu
    assert "rewrites)\nEdge TPU (predicted): " in tpu and "ops mapped (100%), 100.0% of" in tpu and "cut" not in tpu


def test_a_truncated_model_is_bad_input(graphs, tmp_path):
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(graphs["leaky"].read_bytes()[:200])
    with pytest.raises(TfpipeError, match="cut.tflite: not a readable TFLite model"):
        read_graph(cut)


def test_boxes_and_scores_in_one_quantized_output_are_warned_about(tmp_path):
    """YOLO-style [1, N, 4 + C]: pixel boxes (0..96) and sigmoid scores share one int8 scale."""
    from tfpipe.backend import keras
    from tfpipe.runtime.backends import open_interpreter
    from tfpipe.runtime.collapse import collapsed, shared_outputs
    from tfpipe.runtime.quant import dequantize, quantize

    i = keras.Input((8, 8, 3))
    x = keras.layers.Reshape((64, 3))(i)
    # calibration inputs are in 0..1, so every box coordinate saturates at 6 x 16: the range is 0..96
    # whatever the random weights (a sigmoid's range would depend on them)
    saturated = keras.layers.Dense(4, kernel_initializer=keras.initializers.Constant(100.0))(x)
    boxes = keras.layers.ReLU(6.0)(saturated) * 16.0
    # seeded: with other weights a score channel can spread over more of its 2.7 steps, and the
    # collapse check below rightly leaves it out (seen once in 16 unseeded runs)
    scores = keras.layers.Dense(3, activation="sigmoid", kernel_initializer=keras.initializers.GlorotUniform(0))(x)
    joined = _convert(keras.Model(i, keras.layers.Concatenate()([boxes, scores])), tmp_path / "joined.tflite")
    [warning] = shared_outputs(joined)
    assert "[1, 64, 7] looks like boxes and scores in one quantized tensor" in warning
    steps = int(warning.split(" only ")[1].split()[0])
    assert steps == 2  # one scale over 0..96 (96 / 255 per step): a score in 0..1 gets 2.7 steps
    separate = _convert(keras.Model(i, [boxes, scores]), tmp_path / "separate.tflite")
    assert shared_outputs(separate) == []
    # and from what the int8 file computes: the evaluator's collapse check names the squeezed channels
    model = keras.Model(i, keras.layers.Concatenate()([boxes, scores]))
    images = np.random.default_rng(1).random((16, 8, 8, 3), np.float32)
    interpreter, _ = open_interpreter(str(joined))
    interpreter.allocate_tensors()
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    outputs = []
    for image in images:
        interpreter.set_tensor(source["index"], quantize(image[None], source["dtype"], *source["quantization"]))
        interpreter.invoke()
        outputs.append(dequantize(interpreter.get_tensor(target["index"]), *target["quantization"]))
    scale = target["quantization"][0]
    [found] = collapsed({"detections": np.concatenate(outputs)}, {"detections": model.predict(images, verbose=0)},
                        {"detections": scale})
    assert found.startswith("output 'detections': channel(s) 4, 5, 6 span at most")
