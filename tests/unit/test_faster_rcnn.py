"""Faster R-CNN: RoIAlign against a NumPy bilinear reference, the RPN's anchors and its 0.7/0.3
targets, the second stage's loss, the unit-anchor encoding the post-processing op decodes, and an
int8 model of builtin ops that the Edge TPU checker refuses with a named op."""

import numpy as np
import pytest

from tfpipe.config import Config, ModelConfig
from tfpipe.models import registry
from tfpipe.models.detection import faster_rcnn as F


def bilinear(feature: np.ndarray, y: float, x: float) -> np.ndarray:
    h, w = feature.shape[:2]
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * feature[y0, x0] + (1 - ly) * lx * feature[y0, x1]
            + ly * (1 - lx) * feature[y1, x0] + ly * lx * feature[y1, x1])


def reference_roi_align(features: np.ndarray, boxes: np.ndarray, pool: int, sampling: int) -> np.ndarray:
    """RoIAlign written out point by point: bin (i, j) of a box is the mean of its sampling^2
    points, each sampled bilinearly at its position in feature pixels (centres at .5), clamped."""
    b_count, h, w, c = features.shape
    out = np.zeros((b_count, boxes.shape[1], pool, pool, c))
    n = pool * sampling
    for b in range(b_count):
        for k, (ymin, xmin, ymax, xmax) in enumerate(boxes[b]):
            for i in range(pool):
                for j in range(pool):
                    for si in range(sampling):
                        for sj in range(sampling):
                            y = (ymin + (i * sampling + si + 0.5) / n * (ymax - ymin)) * h - 0.5
                            x = (xmin + (j * sampling + sj + 0.5) / n * (xmax - xmin)) * w - 0.5
                            y, x = np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)
                            out[b, k, i, j] += bilinear(features[b], y, x) / sampling ** 2
    return out.reshape(b_count, boxes.shape[1], -1)


@pytest.mark.parametrize("pool, sampling", [(2, 1), (3, 2), (7, 2)])
def test_roi_align_matches_the_numpy_bilinear_reference(pool, sampling):
    rng = np.random.default_rng(pool)
    features = rng.normal(size=(2, 6, 9, 3)).astype(np.float32)
    boxes = np.array([[[0.1, 0.2, 0.6, 0.9], [0.0, 0.0, 1.0, 1.0], [0.45, 0.3, 0.5, 0.32]],
                      [[0.3, 0.05, 0.95, 0.4], [0.9, 0.9, 1.0, 1.0], [0.2, 0.6, 0.2, 0.6]]], np.float32)
    got = F.roi_align(features, boxes, pool, sampling).numpy()
    np.testing.assert_allclose(got, reference_roi_align(features, boxes, pool, sampling), atol=1e-5)


def test_roi_align_reproduces_a_linear_ramp_exactly():
    """Bilinear sampling is exact on a linear function: each bin of a box inside the map holds the
    ramp's value at the bin's centre."""
    h, w = 8, 8
    yy, xx = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")  # pixel centres
    features = (2 * yy + 3 * xx).astype(np.float32)[None, :, :, None]
    box = np.array([[[0.25, 0.25, 0.75, 0.75]]], np.float32)  # pixels 2..6 on both axes
    got = F.roi_align(features, box, 2, 2).numpy().reshape(2, 2)
    centres = 2 + np.array([1.0, 3.0])  # bins of 2 pixels from pixel 2
    np.testing.assert_allclose(got, 2 * centres[:, None] + 3 * centres[None, :], atol=1e-5)


def test_int8_roi_align_blends_the_same_pixels_as_float():
    """Converted to int8 (float fallback for FLOOR and CAST, as the family converts), RoIAlign
    stays within a few quantization steps of float on a ramp. It read one row and column twice
    before: the neighbour index floor + 1.0 was quantized (1.0 became 0.988) and truncated."""
    from ai_edge_litert.interpreter import Interpreter

    from tfpipe.backend import keras, tf

    h = w = 8
    yy, xx = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    ramp = (2 * yy + 3 * xx).astype(np.float32)[None, :, :, None]  # 2.5 .. 37.5
    features = keras.Input((h, w, 1), batch_size=1, name="features")
    boxes = keras.Input((6, 4), batch_size=1, name="boxes")
    model = keras.Model([features, boxes], F.RoIAlign(2, 2)([features, boxes]))
    rng = np.random.default_rng(0)

    def random_boxes():
        low = rng.uniform(0, 0.6, (1, 6, 2))
        return np.concatenate([low, low + rng.uniform(0.1, 0.4, (1, 6, 2))], -1).astype(np.float32)

    def calibration():  # by input name: the converted graph's input order need not be the Keras order
        for _ in range(32):
            yield {"features": ramp, "boxes": random_boxes()}

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    run = interpreter.get_signature_runner()
    worst = 0.0
    for _ in range(20):
        b = random_boxes()
        feed = {name: ramp if len(d["shape"]) == 4 else b for name, d in run.get_input_details().items()}
        [got] = run(**feed).values()
        worst = max(worst, float(np.abs(got - model([ramp, b]).numpy()).max()))
    # measured 0.58: the input, box, position, fraction and output steps add up (one output step is
    # 35 / 255 = 0.14); with a pixel read twice it was 4.24 (the ramp rises 3 per pixel)
    assert worst < 1.0, worst


def test_rpn_anchors_are_every_size_and_ratio_at_every_cell():
    anchors = F.rpn_anchors((128, 64, 3), sizes=(0.2, 0.4), ratios=(0.5, 1.0, 2.0))
    assert anchors.shape == (8 * 4 * 6, 4)
    np.testing.assert_allclose(anchors[0, :2], [1 / 16, 1 / 8])
    # ratio 2 at size 0.2: twice as wide as high in pixels, area (0.2 * 128)^2
    h, w = anchors[2, 2] * 128, anchors[2, 3] * 64
    np.testing.assert_allclose([w / h, h * w], [2.0, (0.2 * 128) ** 2], rtol=1e-5)


def test_two_stage_targets_leave_the_rpns_middle_band_out_and_pass_the_ground_truths_on():
    from tfpipe.backend import tf
    from tfpipe.models.detection.boxes import IGNORED
    from tfpipe.models.detection.faster_rcnn import MAX_OBJECTS, two_stage_targets

    anchors = np.array([[0.25, 0.25, 0.5, 0.5], [0.3, 0.3, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5]], np.float32)
    images = tf.zeros((1, 100, 100, 3))
    boxes = tf.ragged.constant([[[0.0, 0.0, 50.0, 50.0]]], ragged_rank=1, dtype=tf.float32)
    classes = tf.ragged.constant([[3.0]], dtype=tf.float32)
    out = two_stage_targets(images, boxes, classes, anchors)
    # anchor 0 is the box (IoU 1), anchor 1 overlaps it at 0.68 (in 0.3..0.7), anchor 2 not at all
    assert out[F.RPN_OBJECTNESS].numpy().tolist() == [[4, IGNORED, 0]]
    head = out[F.HEAD].numpy()
    assert head.shape == (1, MAX_OBJECTS, 5)
    np.testing.assert_allclose(head[0, 0], [0.0, 0.0, 0.5, 0.5, 4.0])
    assert not head[0, 1:].any()


def test_fast_rcnn_loss_matches_proposals_to_ground_truths():
    from tfpipe.models.detection.faster_rcnn import FastRCNNLoss

    ground_truth = np.zeros((1, 3, 5), np.float32)
    ground_truth[0, 0] = [0.1, 0.1, 0.5, 0.5, 2]  # class 1
    proposals = np.array([[[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.5, 0.54], [0.6, 0.6, 0.9, 0.9]]], np.float32)
    encodings = np.zeros((1, 3, 4), np.float32)
    probabilities = np.array([[[0.2, 0.1, 0.7], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]]], np.float32)
    y_pred = np.concatenate([proposals, encodings, probabilities], -1)
    loss = FastRCNNLoss(0.5, reduction="none")(ground_truth, y_pred).numpy()
    # proposals 0 and 1 match class 1 (index 2 of the softmax), proposal 2 is background
    cross_entropy = -np.mean(np.log([0.7, 0.8, 0.6]))
    # proposal 1's box target relative to itself: centre (0.31, 0.32) size (0.38, 0.44) -> the gt's
    t = np.array([(0.3 - 0.31) / 0.38 * 10, (0.3 - 0.32) / 0.44 * 10, np.log(0.4 / 0.38) * 5, np.log(0.4 / 0.44) * 5])
    smooth = np.where(np.abs(t) < 1, 0.5 * t ** 2, np.abs(t) - 0.5).sum()
    np.testing.assert_allclose(loss, [cross_entropy + smooth / 2], rtol=1e-4)


def test_unit_anchor_encoding_decodes_to_the_refined_box():
    from tfpipe.runtime.detection import decode

    proposals = np.array([[[0.2, 0.1, 0.6, 0.5]]], np.float32)
    encodings = np.array([[[1.0, -2.0, 0.5, -0.5]]], np.float32)  # relative to the proposal
    out = F.UnitAnchorEncoding()([proposals, encodings]).numpy()
    unit = registry.anchors(ModelConfig("faster_rcnn_resnet18", (128, 128), 3, {"proposals": 1}), 2)
    expected = decode(encodings[0], np.array([[0.4, 0.3, 0.4, 0.4]], np.float32))
    np.testing.assert_allclose(decode(out[0], unit), expected, atol=1e-5)


def test_int8_runs_on_builtin_ops_and_the_edge_tpu_checker_names_where_it_stops(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from tfpipe import tasks
    from tfpipe.convert.tflite import to_tflite
    from tfpipe.delegates import edgetpu
    from tfpipe.qat import apply_qat
    from tfpipe.runtime.graph import read_graph

    cfg = ModelConfig("faster_rcnn_resnet18", (64, 64), 3, {"proposals": 8, "roi_channels": 8, "head_units": 16,
                                                            "rpn_filters": 16})
    model = registry.build(cfg, "detection", 3)
    view = tasks.get("detection").training_view(model, Config(task="detection", model=cfg))
    assert [o.shape[1:] for o in view.outputs] == [(144, 4), (144, 1), (8, 4 + 4 + 4)]
    x = np.random.default_rng(0).random((4, 64, 64, 3), np.float32)
    path = tmp_path / "frcnn_int8.tflite"
    path.write_bytes(to_tflite(apply_qat(model), "int8", "uint8", x, float_layers=registry.float_layers(cfg)))
    interpreter = Interpreter(model_path=str(path))
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "CUSTOM" not in ops and {"GATHER", "TOPK_V2", "FLOOR"} <= ops
    # the box and sampling arithmetic is float (or int32 indices; moving int8 values, as GATHER
    # does, is exact; a layer's output keeps the quantizer QAT trained), the convolutions int8,
    # the input uint8
    tensors = interpreter.get_tensor_details()
    arithmetic = [(op["op_name"], tensors[op["outputs"][0]]) for op in interpreter._get_ops_details()
                  if op["op_name"] in ("ADD", "SUB", "MUL", "EXP", "LOG", "MINIMUM", "MAXIMUM")
                  and any(f"/quant_{n}/" in tensors[op["outputs"][0]]["name"] for n in F.TwoStageHead.float_layers)]
    assert len(arithmetic) > 10 and all(t["dtype"] in (np.float32, np.int32) for _, t in arithmetic), \
        [(name, t["name"]) for name, t in arithmetic if t["dtype"] not in (np.float32, np.int32)]
    assert {t["dtype"] for t in tensors if "head_fc1" in t["name"]} == {np.int8}
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8
    out = interpreter.get_signature_runner()(images=np.zeros((1, 64, 64, 3), np.uint8))
    assert out["box_encodings"].shape == (1, 8, 4) and out["class_scores"].shape == (1, 8, 3)
    prediction = edgetpu.predict(read_graph(path))
    # the backbone maps; the graph is cut where the proposals' float arithmetic begins
    cut = prediction["first_unmapped"]
    assert cut["op"] == "DEQUANTIZE" and "hands a float tensor to" in cut["reason"], cut
    assert prediction["macs"]["share"] > 0.5


def test_more_proposals_than_anchors_is_refused_at_the_config_check():
    from tfpipe.errors import TfpipeError

    with pytest.raises(TfpipeError, match="proposals=1000 exceeds the RPN's anchors"):
        registry.check(ModelConfig("faster_rcnn_resnet18", (64, 64), 3, {"proposals": 1000}), "detection")
