"""The classification zoo: published sizes, the backbone API at any input size >= 32, and QAT to
int8 builtin ops for every layer type the zoo uses."""

import numpy as np
import pytest

from tfpipe import models
from tfpipe.backend import keras
from tfpipe.config import ModelConfig
from tfpipe.models.summary import backbone, multiply_adds

# ../shared/anchors.md, "Published sizes for the zoo" (multiply-adds at 224x224x3, 1,000 classes).
# Where the table says "~0.7G" for AlexNet, torchvision's precise 0.714G. MobileNetV2: the 3.4M
# leaves out the classifier; keras.applications' full count is 3,538,984 (test_models.py).
# Keras counts BatchNorm's moving statistics as parameters (PyTorch does not): at most 0.2 % more.
PUBLISHED = {
    "alexnet": (61.1e6, 0.714e9),
    "vgg16": (138e6, 15.5e9),
    "resnet18": (11.7e6, 1.8e9),
    "resnet50": (25.5e6, 4.1e9),
    "resnext50_32x4d": (25.0e6, 4.2e9),
    "mobilenet_v1_100": (4.2e6, 569e6),
    "mobilenet_v2_100": (3_538_984, 300e6),
    "googlenet": (6.6e6, 1.5e9),
    "shufflenet_v2_10": (2.3e6, 146e6),
    # Not in anchors.md: ShuffleNet v1 g=3 from the paper's Table 2 (140 MFLOPs = multiply-adds)
    # and OpenMMLab's parameter count of the same network (1.87M); Darknet-19 from YOLO9000 (5.58
    # billion operations = 2 per multiply-add) and its Darknet weights (20.8M).
    "shufflenet_v1_g3": (1.87e6, 140e6),
    "darknet19": (20.8e6, 2.79e9),
}

# Darknet-53 is published at 256x256 (YOLOv3, Table 2: 18.7 billion operations = 9.35G multiply-adds;
# 41.6M parameters with 1,000 classes).
PUBLISHED_AT = {"darknet53": (256, 41.6e6, 9.35e9)}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_params_and_multiply_adds_match_the_published_figures(name):
    params, macs = PUBLISHED[name]
    model = models.build(ModelConfig(name=name, input_size=(224, 224), channels=3), "classification", 1000)
    assert model.count_params() == pytest.approx(params, rel=0.02)
    assert multiply_adds(model) == pytest.approx(macs, rel=0.02)


@pytest.mark.parametrize("name", sorted(PUBLISHED_AT))
def test_params_and_multiply_adds_at_the_published_input_size(name):
    size, params, macs = PUBLISHED_AT[name]
    model = models.build(ModelConfig(name=name, input_size=(size, size), channels=3), "classification", 1000)
    assert model.count_params() == pytest.approx(params, rel=0.02)
    assert multiply_adds(model) == pytest.approx(macs, rel=0.02)


def test_multiply_adds_count_grouped_and_depthwise_convolutions_by_hand():
    inputs = keras.Input((8, 8, 16))
    x = keras.layers.Conv2D(32, 3, padding="same", groups=4, use_bias=False)(inputs)  # 8*8 * 3*3*4 * 32
    x = keras.layers.DepthwiseConv2D(3, 2, padding="same")(x)  # 4*4 * 3*3 * 32
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(10)(x)  # 32 * 10
    assert multiply_adds(keras.Model(inputs, x)) == 64 * 9 * 4 * 32 + 16 * 9 * 32 + 320


ZOO = ["alexnet", "vgg16", "vgg19_bn", "resnet18", "resnet101", "resnext50_32x4d", "se_resnet50",
       "mobilenet_v1_050", "mobilenet_v2_035", "googlenet", "shufflenet_v2_05", "shufflenet_v1_g3", "darknet19",
       "darknet53"]


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("size", [(32, 32), (61, 45)])
def test_every_family_builds_small_and_gives_features_at_strides_8_16_32(name, size):
    model = models.build(ModelConfig(name=name, input_size=size, channels=1), "classification", 10)
    assert model.output_shape == (None, 10) and model.output_names == ["probabilities"]
    features = backbone(model).outputs
    sides = [tuple(f.shape[1:3]) for f in features]
    assert all(a >= b for a, b in zip(sides[0], sides[1], strict=True))
    assert all(a >= b for a, b in zip(sides[1], sides[2], strict=True))
    if name != "alexnet":  # 'same' padding everywhere: exactly ceil(n / stride)
        assert sides == [tuple(-(-n // s) for n in size) for s in (8, 16, 32)]


# Every layer type the zoo builds with; each is quantized and converted below.
ZOO_LAYERS = {"InputLayer", "ZeroPadding2D", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU",
              "MaxPooling2D", "Add", "Multiply", "Concatenate", "ChannelSplit", "Reshape", "Permute",
              "GlobalAveragePooling2D", "AveragePooling2D", "LeakyReLU", "Flatten", "Dropout", "Dense", "Softmax"}


@pytest.mark.parametrize("name", ZOO)
def test_the_zoo_uses_only_layer_types_that_are_quantized_below(name):
    model = models.build(ModelConfig(name=name, input_size=(32, 32), channels=1), "classification", 10)
    assert {type(layer).__name__ for layer in model.layers} <= ZOO_LAYERS


def test_every_zoo_layer_type_survives_qat_and_converts_to_int8_builtin_ops(tmp_path):
    """One small network made of the families' own blocks: AlexNet's padded stem, a ResNeXt
    bottleneck with grouped convolution and an SE gate (Multiply), a basic block, an inception
    module (Concatenate), ShuffleNet v2 units (ChannelSplit, channel shuffle), ShuffleNet v1 units
    (grouped 1x1, average-pool shortcut), a Darknet residual (LeakyReLU), a MobileNet block with SE.
    QAT, an H5 round trip, int8 conversion: integer activations and builtin ops only."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from tfpipe.convert.tflite import to_tflite
    from tfpipe.models.blocks import conv_bn, depthwise_bn
    from tfpipe.models.classification.darknet import residual
    from tfpipe.models.classification.googlenet import inception
    from tfpipe.models.classification.mobilenet import inverted_residual
    from tfpipe.models.classification.resnet import block
    from tfpipe.models.classification.shufflenet import shuffle_unit, shuffle_unit_v1
    from tfpipe.qat import apply_qat, load_qat_model, save_h5

    layers = keras.layers
    inputs = keras.Input((32, 32, 1), name="images")
    x = layers.ZeroPadding2D(2)(inputs)
    x = layers.Conv2D(16, 5, 2, activation="relu")(x)
    x = layers.MaxPooling2D(3, 2, padding="same")(x)
    x = block(x, 8, 1, "bottleneck", groups=4, width_per_group=8, se_ratio=4, name="resnext")
    x = block(x, 32, 2, "basic", 1, 64, None, name="basic")
    x = inception(x, (8, 8, 16, 4, 8, 8), batch_norm=True, name="inception")
    x = shuffle_unit(x, 40, 2, name="shuffle_down")
    x = shuffle_unit(x, 40, 1, name="shuffle")
    x = conv_bn(x, 24, 1, name="shuffle_v1_in")
    x = shuffle_unit_v1(x, 72, 2, 3, name="shuffle_v1_down", first_groups=1)  # as stage 2 opens
    x = shuffle_unit_v1(x, 72, 1, 3, name="shuffle_v1")
    x = conv_bn(x, 32, 1, act="leaky", name="darknet_in")
    x = residual(x, name="darknet")
    x = inverted_residual(x, 4, 32, 1, name="mobilenet", se_ratio=4)
    x = depthwise_bn(x, 1, name="separable")
    x = conv_bn(x, 24, 1, name="separable_pointwise")
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Softmax(name="probabilities")(layers.Dense(10)(x))
    model = keras.Model(inputs, outputs)
    assert {type(layer).__name__ for layer in model.layers} == ZOO_LAYERS  # the SE gate brings the pooling

    qat = apply_qat(model)
    save_h5(qat, tmp_path / "qat.h5")
    reloaded = load_qat_model(tmp_path / "qat.h5")
    x = np.random.default_rng(0).random((8, 32, 32, 1), np.float32)
    np.testing.assert_allclose(reloaded(x).numpy(), qat(x).numpy(), atol=1e-6)
    interpreter = Interpreter(model_content=to_tflite(reloaded, "int8", "uint8", x),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert {"MUL", "LOGISTIC", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "CONCATENATION", "SPLIT",
            "TRANSPOSE", "LEAKY_RELU", "AVERAGE_POOL_2D"} <= ops
    assert not {"DEQUANTIZE", "CUSTOM", "FlexConv2D"} & ops
    activations = {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()} - {"int32"}  # biases
    assert activations <= {"int8", "uint8"}
    runner = interpreter.get_signature_runner()
    assert runner(images=np.zeros((1, 32, 32, 1), np.uint8))["probabilities"].shape == (1, 10)


def test_grouped_convolution_without_xla_computes_what_xla_computes():
    """tfpipe.backend runs grouped convolutions on TensorFlow's plain kernel (XLA's CPU gradient is
    slow): outputs and kernel gradients must equal the XLA path's."""
    from tfpipe.backend import tf

    layer = keras.layers.Conv2D(12, 3, 2, padding="same", groups=3, use_bias=False)
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 9, 9, 6)), tf.float32)
    layer.build(x.shape)
    assert type(layer)._jit_compiled_convolution_op.__name__ == "grouped_convolution"  # the plain path is on
    results = []
    for run in (layer, lambda inputs: type(layer)._jit_compiled_convolution_op_through_xla(layer, inputs,
                                                                                            layer.kernel)):
        with tf.GradientTape() as tape:
            y = run(x)
            loss = tf.reduce_sum(y * y)
        results.append((y.numpy(), tape.gradient(loss, layer.kernel).numpy()))
    (y_plain, g_plain), (y_xla, g_xla) = results
    assert y_plain.shape == (2, 5, 5, 12)
    np.testing.assert_allclose(y_plain, y_xla, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g_plain, g_xla, rtol=1e-4, atol=1e-3)


def test_models_cli_rejects_bad_sizes(capsys):
    from tests.conftest import run_cli

    assert run_cli("tfpipe.models.__main__", ["summary", "resnet18", "--classes", "0"]) == 2
    assert run_cli("tfpipe.models.__main__", ["summary", "resnet18", "--input-size", "16", "16"]) == 2
    assert run_cli("tfpipe.models.__main__", ["summary", "resnet51"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "--classes: 0 is not accepted" in err[0] and "too small" in err[1]
    assert "did you mean 'resnet50'" in err[2]
    assert run_cli("tfpipe.models.__main__", ["summary", "mobilenet_v2_035", "--input-size", "32", "32",
                                              "--channels", "1", "--classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "stride  8:" in out and "stride 32:" in out and "multiply-adds at 32x32x1 with 10 classes" in out


def test_models_list_sizes_every_registered_model(capsys):
    """Every family at its listing setting, in one process (a learned x32 FCN upsampling with 1,000
    classes once made this command run out of memory)."""
    from tests.conftest import run_cli

    assert run_cli("tfpipe.models.__main__", ["list"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert set(rows) == set(models.registry.names())
    assert rows["resnet50"][1:] == ["classification", "25.61M", "4.089G"]
    assert rows["deeplab_v3_plus_mnv2_os16"][1] == "segmentation"
    assert all(float(row[2][:-1]) > 0 and float(row[3][:-1]) > 0 for row in rows.values())
