"""Segmentation models and their pieces, against the lectures' worked examples."""

import numpy as np
import pytest

from tfpipe import models
from tfpipe.backend import keras, tf
from tfpipe.models import registry

L = keras.layers


def test_transposed_convolution_reproduces_the_lectures_worked_example():
    layer = L.Conv2DTranspose(1, 3, 2, padding="valid", use_bias=False,
                              kernel_initializer=keras.initializers.Constant(
                                  np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32).reshape(3, 3, 1, 1)))
    out = layer(np.array([[10, 20], [30, 40]], np.float32).reshape(1, 2, 2, 1)).numpy()[0, :, :, 0]
    assert out.shape == (5, 5)
    np.testing.assert_array_equal(out[0], [10, 20, 30, 40, 20])
    np.testing.assert_array_equal(out[1], [20, 40, 60, 80, 40])


@pytest.mark.parametrize("kernel, stride, padding", [(4, 2, "same"), (16, 8, "same"), (3, 2, "same"),
                                                     (2, 2, "valid"), (3, 1, "same")])
def test_the_subpixel_form_computes_exactly_what_conv2d_transpose_computes(kernel, stride, padding):
    from tfpipe.models.segmentation.common import transposed_conv

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
    weights = rng.normal(size=(kernel, kernel, 4, 3)).astype(np.float32)
    reference = L.Conv2DTranspose(4, kernel, stride, padding=padding, use_bias=False,
                                  kernel_initializer=keras.initializers.Constant(weights))(x).numpy()
    inputs = keras.Input((5, 6, 3))
    ours = keras.Model(inputs, transposed_conv(inputs, 4, kernel, stride, padding=padding, initial=weights,
                                               use_bias=False, name="up"))(x).numpy()
    assert ours.shape == reference.shape == (2, 5 * stride, 6 * stride, 4)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


def test_fcn_upsampling_starts_as_bilinear_interpolation():
    from tfpipe.models.segmentation.common import learned_upsample

    x = np.random.default_rng(0).random((1, 8, 8, 3), np.float32)
    inputs = keras.Input((8, 8, 3))
    up = keras.Model(inputs, learned_upsample(inputs, 2, name="up"))(x).numpy()
    expected = tf.image.resize(x, (16, 16), method="bilinear").numpy()  # half-pixel centres
    assert up.shape == (1, 16, 16, 3)
    np.testing.assert_allclose(up[:, 1:-1, 1:-1], expected[:, 1:-1, 1:-1], atol=1e-6)  # borders see zero padding


def test_max_unpooling_puts_each_value_back_at_its_argmax_and_breaks_ties_as_argmax_does():
    from tfpipe.models.segmentation.segnet import MaxUnpooling2D

    rng = np.random.default_rng(0)
    before = rng.permutation(2 * 8 * 6 * 3).reshape(2, 8, 6, 3).astype(np.float32)  # distinct values
    before[0, :2, :2, 0] = [[5, 7], [7, 1]]  # a tie of the maximum: the first in row-major order wins
    before[0, 2:4, :2, 0] = 0  # an all-zero window, as after ReLU
    values = rng.normal(size=(2, 4, 3, 3)).astype(np.float32)
    out = MaxUnpooling2D()([before, values]).numpy()
    _, argmax = tf.nn.max_pool_with_argmax(before, 2, 2, "VALID", include_batch_in_index=True)
    expected = np.zeros(before.size, np.float32)
    expected[argmax.numpy().ravel()] = values.ravel()
    np.testing.assert_array_equal(out, expected.reshape(before.shape))
    assert np.count_nonzero(out) == values.size


def test_atrous_convolution_sees_2r_plus_1_pixels_and_deeplab_uses_the_papers_rates():
    for rate in (1, 2, 6):
        conv = L.Conv2D(1, 3, dilation_rate=rate, padding="same", use_bias=False, kernel_initializer="ones")
        impulse = np.zeros((1, 31, 31, 1), np.float32)
        impulse[0, 15, 15, 0] = 1
        rows, cols = np.nonzero(conv(impulse).numpy()[0, :, :, 0])
        assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (2 * rate + 1, 2 * rate + 1)
        assert len(rows) == 9  # still a 3x3 kernel: 9 taps spread over (2r+1)^2
    for stride, rates in ((16, (6, 12, 18)), (8, (12, 24, 36))):
        model = registry.get(f"deeplab_v3_plus_mnv2_os{stride}").builder(input_shape=(64, 64, 3), num_classes=5,
                                                                          output_stride=stride)
        assert [model.get_layer(f"aspp_rate{r}_conv").dilation_rate for r in rates] == [(r, r) for r in rates]
        assert model.get_layer("block16_project_bn").output.shape[1:3] == (64 // stride, 64 // stride)
        assert model.output_shape == (None, 64, 64, 5)


def test_pyramid_pooling_gives_bins_1_2_3_6_and_keeps_the_feature_size():
    from tfpipe.models.segmentation.pspnet import pyramid_pooling

    inputs = keras.Input((12, 12, 64))
    model = keras.Model(inputs, pyramid_pooling(inputs))
    assert [model.get_layer(f"ppm_pool{b}").output.shape[1:3] for b in (1, 2, 3, 6)] == [(1, 1), (2, 2), (3, 3),
                                                                                           (6, 6)]
    assert model.output_shape == (None, 12, 12, 64 + 4 * 16)
    with pytest.raises(ValueError, match="8x8 features do not divide into 3x3 bins"):
        pyramid_pooling(keras.Input((8, 8, 16)))


def test_segmentation_loss_ignores_void_pixels_and_weighs_classes():
    from tfpipe.tasks.segmentation import SegmentationLoss

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (2, 4, 4)).astype(np.int32)
    labels[0, 0, :] = 255
    logits = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
    probabilities = tf.nn.softmax(logits).numpy()
    valid = labels != 255
    picked = np.take_along_axis(probabilities, np.where(valid, labels, 0)[..., None], -1)[..., 0]
    per_image = [-np.log(picked[i][valid[i]]).mean() for i in range(2)]
    assert float(SegmentationLoss(3)(labels, probabilities)) == pytest.approx(np.mean(per_image), rel=1e-5)
    changed = probabilities.copy()
    changed[0, 0, :] = [1, 0, 0]  # whatever is predicted on void pixels does not count
    assert float(SegmentationLoss(3)(labels, changed)) == pytest.approx(np.mean(per_image), rel=1e-5)
    weights = np.array([1.0, 2.0, 0.5])
    w = weights[np.where(valid, labels, 0)] * valid
    weighted = [(-np.log(picked[i]) * w[i]).sum() / w[i].sum() for i in range(2)]
    assert float(SegmentationLoss(3, class_weights=list(weights))(labels, probabilities)) == pytest.approx(
        np.mean(weighted), rel=1e-5)
    perfect = np.eye(3, dtype=np.float32)[np.where(valid, labels, 0)]
    assert float(SegmentationLoss(3, dice_weight=1.0)(labels, perfect)) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("name, size, args", [
    ("fcn32s", 64, {"backbone": "resnet18"}), ("fcn16s", 64, {"backbone": "resnet18"}),
    ("fcn8s", 64, {"backbone": "mobilenet_v2_035"}), ("unet_lite", 64, {}), ("segnet_lite", 64, {}),
    ("pspnet", 96, {"aux_loss": True}), ("deeplab_v3_plus_mnv2_os16", 64, {"width": 0.35}),
    ("deeplab_v3_plus_mnv2_os8", 64, {"width": 0.35}),
])
def test_every_segmentation_model_gives_per_pixel_probabilities_at_the_input_size(name, size, args):
    entry = registry.get(name)
    assert entry.task == "segmentation"
    model = entry.builder(input_shape=(size, size, 3), num_classes=6, **entry.fixed, **args)
    outputs = model(np.random.default_rng(0).random((1, size, size, 3), np.float32))
    outputs = outputs if isinstance(outputs, list) else [outputs]
    assert model.output_names[0] == "probabilities"
    for out in outputs:
        assert out.shape == (1, size, size, 6)
        np.testing.assert_allclose(out.numpy().sum(-1), 1.0, rtol=1e-5)
    assert models.registry.names("segmentation")


@pytest.mark.parametrize("name, size, args", [
    ("fcn8s", 64, {"backbone": "mobilenet_v2_035"}), ("unet", 32, {"width": 8, "depth": 2}),
    ("segnet", 32, {"width": 8, "stages": 2}), ("pspnet", 96, {"backbone": "mobilenet_v2_035"}),
    ("deeplab_v3_plus_mnv2_os16", 64, {"width": 0.35, "filters": 16, "low_level_filters": 8}),
])
def test_every_segmentation_model_survives_qat_and_converts_to_integer_builtin_ops(name, size, args):
    """Transposed convolutions, bilinear Resizing (quantized at its output), max-unpooling (booleans
    and the quantized values only), atrous convolutions, pyramid pooling: int8 from input to output."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from tfpipe.convert.tflite import to_tflite
    from tfpipe.qat import apply_qat

    entry = registry.get(name)
    qat = apply_qat(entry.builder(input_shape=(size, size, 1), num_classes=4, **entry.fixed, **args))
    x = np.random.default_rng(0).random((4, size, size, 1), np.float32)
    interpreter = Interpreter(model_content=to_tflite(qat, "int8", "uint8", x),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not {"DEQUANTIZE", "CUSTOM"} & ops and not any(op.startswith("Flex") for op in ops)
    assert {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()} <= {"int8", "uint8", "int32", "bool"}
    out = interpreter.get_signature_runner()(images=np.zeros((1, size, size, 1), np.uint8))["probabilities"]
    assert out.shape == (1, size, size, 4)
