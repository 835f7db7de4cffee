import pytest

from tfpipe import models
from tfpipe.backend import keras
from tfpipe.config import ModelConfig
from tfpipe.errors import TfpipeError

# Layers tfmot's default registry quantizes and TFLite runs as builtin int8 ops.
QAT_SAFE = {"InputLayer", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "Add",
            "GlobalAveragePooling2D", "Dense", "Softmax", "Dropout"}


def test_mobilenet_v2_matches_the_reference_architecture():
    """Same parameter count as keras.applications' MobileNetV2 (3,538,984 at 224x224x3, 1000 classes),
    whose 3.4M (+ classifier) is the paper's figure."""
    ours = models.build(ModelConfig(name="mobilenet_v2_100", input_size=(224, 224), channels=3),
                        "classification", 1000)
    reference = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classes=1000)
    assert ours.count_params() == reference.count_params() == 3_538_984


@pytest.mark.parametrize("width", [0.35, 0.75])
def test_width_multiplier_matches_the_reference(width):
    ours = models.build(ModelConfig(name="mobilenet_v2", input_size=(96, 96), channels=3, args={"width": width}),
                        "classification", 10)
    reference = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), classes=10, alpha=width)
    assert ours.count_params() == reference.count_params()


def test_small_grayscale_build_uses_only_qat_safe_layers():
    model = models.build(ModelConfig(name="mobilenet_v2_035", input_size=(32, 32), channels=1,
                                     args={"stem_stride": 1}), "classification", 10)
    assert model.input_shape == (None, 32, 32, 1) and model.output_shape == (None, 10)
    assert model.output_names == ["probabilities"]
    assert {type(layer).__name__ for layer in model.layers} <= QAT_SAFE


def test_registry_errors_suggest():
    with pytest.raises(TfpipeError, match="did you mean 'mobilenet_v2'"):
        models.check(ModelConfig(name="mobilenet_v3"), "classification")
    with pytest.raises(TfpipeError, match="did you mean 'width'"):
        models.check(ModelConfig(name="mobilenet_v2", args={"widht": 1.0}), "classification")
    with pytest.raises(TfpipeError, match="fixed to 0.35 by the variant"):
        models.check(ModelConfig(name="mobilenet_v2_035", args={"width": 1.0}), "classification")
