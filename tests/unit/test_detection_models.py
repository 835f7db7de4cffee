"""Detectors: outputs laid out on their anchors, integer-only int8 with separate box and score
tensors mapped whole by the Edge TPU checker, the losses against NumPy, and the training targets."""

import numpy as np
import pytest

from tfpipe.config import ModelConfig
from tfpipe.models import registry


@pytest.mark.parametrize("size, args", [((64, 64), {}), ((96, 96), {}), ((100, 100), {}), ((96, 128), {}),
                                        ((100, 100), {"first_stride": 8, "extra_levels": 1})])
def test_ssdlite_outputs_one_row_per_anchor(size, args):
    entry = registry.get("ssdlite_mnv2")
    model = entry.builder(input_shape=(*size, 3), num_classes=10, **entry.fixed, **args)
    anchors = registry.anchors(ModelConfig("ssdlite_mnv2", size, 3, args), 10)
    boxes, scores = model.outputs
    assert model.output_names == ["box_encodings", "class_scores"]
    assert boxes.shape[1:] == (len(anchors), 4) and scores.shape[1:] == (len(anchors), 10)
    assert np.all(anchors[:, 2:] > 0) and np.all((anchors[:, :2] > 0) & (anchors[:, :2] < 1))


def test_a_detector_registered_without_a_head_is_one_line_naming_it(monkeypatch):
    """The detection task asks the family's head for everything a detector trains with: a family
    that forgot to register one is named, not an AttributeError deep in training."""
    from tfpipe import tasks
    from tfpipe.config import Config
    from tfpipe.errors import TfpipeError

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register("detector_without_head", "detection", lambda input_shape, num_classes: None)
    cfg = Config(task="detection", model=ModelConfig("detector_without_head", (64, 64), 3, {}))
    with pytest.raises(TfpipeError, match="model.name: detector_without_head has no detector head"):
        tasks.get("detection").training_view(object(), cfg)


def test_ssdlite_qat_int8_is_integer_only_with_separate_outputs_and_maps_on_the_edge_tpu(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from tfpipe.convert.tflite import to_tflite
    from tfpipe.delegates import edgetpu
    from tfpipe.qat import apply_qat
    from tfpipe.runtime.graph import read_graph

    entry = registry.get("ssdlite_mobilenet_v2")
    qat = apply_qat(entry.builder(input_shape=(64, 64, 3), num_classes=3, width=0.35, extra_filters=64))
    x = np.random.default_rng(0).random((4, 64, 64, 3), np.float32)
    path = tmp_path / "ssd_int8.tflite"
    path.write_bytes(to_tflite(qat, "int8", "uint8", x))
    interpreter = Interpreter(model_path=str(path))
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not {"DEQUANTIZE", "CUSTOM"} & ops and "LOGISTIC" in ops
    runner = interpreter.get_signature_runner()
    out = runner(images=np.zeros((1, 64, 64, 3), np.uint8))
    assert out["box_encodings"].shape[-1] == 4 and out["class_scores"].shape[-1] == 3
    details = {d["name"]: d["quantization"] for d in interpreter.get_output_details()}
    assert len(set(details.values())) == 2  # boxes and scores each have their own scale
    prediction = edgetpu.predict(read_graph(path))
    assert prediction["first_unmapped"] is None and prediction["macs"]["share"] == 1.0


def test_box_loss_is_smooth_l1_over_the_positives():
    from tfpipe.models.detection.losses import BoxLoss

    rng = np.random.default_rng(0)
    predicted = rng.normal(size=(2, 6, 4)).astype(np.float32)
    target = rng.normal(size=(2, 6, 4)).astype(np.float32)
    classes = np.array([[0, 1, 0, 3, 0, 0], [0, 0, 0, 0, 0, 0]], np.float32)
    loss = BoxLoss(reduction="none")(np.concatenate([target, classes[..., None]], -1), predicted).numpy()
    error = np.abs(target - predicted)
    smooth = np.where(error < 1, 0.5 * error ** 2, error - 0.5).sum(-1)
    np.testing.assert_allclose(loss, [(smooth[0, 1] + smooth[0, 3]) / 2, 0.0], rtol=1e-5)


def test_focal_loss_matches_its_definition():
    from tfpipe.models.detection.losses import FocalLoss

    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.99, (2, 5, 3)).astype(np.float32)
    labels = np.array([[0, 2, 0, 0, 1], [0, 0, 0, 0, 0]], np.int32)
    loss = FocalLoss(alpha=0.25, gamma=2.0, reduction="none")(labels, p).numpy()
    target = np.zeros_like(p)
    for b, n in zip(*np.nonzero(labels), strict=True):
        target[b, n, labels[b, n] - 1] = 1
    p_t = np.where(target == 1, p, 1 - p)
    alpha_t = np.where(target == 1, 0.25, 0.75)
    per_image = (-alpha_t * (1 - p_t) ** 2 * np.log(p_t)).sum(axis=(1, 2))
    np.testing.assert_allclose(loss, per_image / np.maximum([2, 0], 1), rtol=1e-5)


def test_training_targets_encode_each_image_on_the_anchors():
    from tfpipe.backend import tf
    from tfpipe.models.detection.boxes import training_targets
    from tfpipe.runtime.detection import decode

    anchors = np.array([[0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]], np.float32)
    images = tf.zeros((2, 40, 80, 3))
    boxes = tf.ragged.constant([[[0.0, 0.0, 40.0, 20.0]], []], ragged_rank=1, dtype=tf.float32)
    classes = tf.ragged.constant([[4.0], []], dtype=tf.float32)
    out = training_targets(images, boxes, classes, anchors)
    encoded, ids = out["box_encodings"].numpy(), out["class_scores"].numpy()
    assert ids.tolist() == [[5, 0, 0], [0, 0, 0]]
    np.testing.assert_allclose(encoded[0, 0, 4], 5.0)
    np.testing.assert_allclose(decode(encoded[0, :1, :4], anchors[:1]), [[0.0, 0.0, 0.5, 0.5]], atol=1e-6)
    assert not encoded[1].any()


@pytest.mark.parametrize("args, message", [
    ({"first_stride": 4}, "model.args: ssdlite_mnv2: first_stride must be 8 or 16, got 4"),
    ({"smallest": 0.9, "largest": 0.5}, "model.args: ssdlite_mnv2: anchor sizes need 0 < smallest < largest"),
])
def test_anchor_settings_are_refused_by_the_config_check_before_anything_is_built(args, message):
    from tfpipe.errors import TfpipeError

    with pytest.raises(TfpipeError, match=message):
        registry.check(ModelConfig("ssdlite_mnv2", (128, 128), 3, args), "detection")
