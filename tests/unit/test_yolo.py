"""YOLO: priors laid out on the grids, the decoding re-expressed as SSD's encoding (checked against
YOLO's own formula on the model's raw outputs), YOLO's assignment, its losses against NumPy,
the training view, and `python -m tfpipe.data anchors`."""

import numpy as np
import pytest

from tfpipe.config import ModelConfig
from tfpipe.models import registry
from tfpipe.models.detection import yolo


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_layout_puts_each_levels_priors_at_its_cell_centres_smallest_on_the_finest_grid():
    priors = [[0.5, 0.6], [0.1, 0.1], [0.2, 0.3], [0.9, 0.8]]  # (w, h), deliberately unsorted
    anchors, cells = yolo.layout((64, 96, 3), (16, 32), priors)
    # strides 16 and 32 on 64x96: grids 4x6 and 2x3, two priors each
    assert anchors.shape == (4 * 6 * 2 + 2 * 3 * 2, 4) and cells.shape == (len(anchors), 2)
    fine, coarse = anchors[:48], anchors[48:]
    np.testing.assert_allclose(fine[:2], [[0.125, 1 / 12, 0.1, 0.1], [0.125, 1 / 12, 0.3, 0.2]], rtol=1e-6)
    np.testing.assert_allclose(fine[2, :2], [0.125, 3 / 12], rtol=1e-6)  # next cell along the row
    np.testing.assert_allclose(coarse[-1], [0.75, 5 / 6, 0.8, 0.9], rtol=1e-6)
    np.testing.assert_allclose(cells[:48], np.tile([0.25, 1 / 6], (48, 1)), rtol=1e-6)
    np.testing.assert_allclose(cells[48:], np.tile([0.5, 1 / 3], (12, 1)), rtol=1e-6)


@pytest.mark.parametrize("name, args, size", [
    ("yolov2_tiny", {"stride": 16, "filters": 32, "passthrough_filters": 8}, (64, 64)),
    ("yolo_v2", {"stride": 32, "filters": 32}, (96, 64)),
    ("yolov3_mnv2", {"width": 0.35, "filters": 32}, (64, 64)),
    ("yolov3_tiny", {}, (64, 96)),
])
def test_box_encodings_decode_to_yolos_own_formula(name, args, size):
    """centre = (cell + sigmoid(t_yx)) / grid and size = prior * exp(t_hw), with t read from the
    model's raw head convolutions, equals the runtime's SSD decoding of `box_encodings`."""
    from tfpipe.backend import keras
    from tfpipe.runtime.detection import centres, decode

    cfg = ModelConfig(name, size, 3, args)
    model = registry.build(cfg, "detection", 3)
    geometry = registry.geometry(cfg, 3)
    anchors, cells = geometry["anchors"], geometry["cells"]
    assert model.output_names == ["box_encodings", "class_scores"]
    levels = sorted({layer.name.split("_")[0] for layer in model.layers if layer.name.endswith("_yx")})
    raw = keras.Model(model.input, [model.get_layer("box_encodings").output, model.get_layer("class_scores").output]
                      + [model.get_layer(f"{lv}_{part}").output for lv in levels
                         for part in ("yx", "hw", "objectness", "classes")])
    x = np.random.default_rng(0).normal(size=(2, *size, 3)).astype(np.float32)
    encodings, scores, *heads = raw.predict(x, verbose=0)
    t_yx = np.concatenate([h.reshape(2, -1, 2) for h in heads[0::4]], axis=1)
    t_hw = np.concatenate([h.reshape(2, -1, 2) for h in heads[1::4]], axis=1) / 5  # the conv learns 5 * t_hw
    objectness = np.concatenate([h.reshape(2, -1, 1) for h in heads[2::4]], axis=1)
    classes = np.concatenate([h.reshape(2, -1, 3) for h in heads[3::4]], axis=1)
    cell_corner = anchors[:, :2] - cells / 2
    expected = np.concatenate([cell_corner + sigmoid(t_yx) * cells, anchors[:, 2:] * np.exp(t_hw)], axis=-1)
    np.testing.assert_allclose(centres(decode(encodings, anchors)), expected, atol=2e-5)
    np.testing.assert_allclose(scores, sigmoid(objectness) * sigmoid(classes), atol=1e-5)


def test_assignment_gives_each_object_to_the_cell_holding_its_centre_and_its_best_prior():
    from functools import partial

    from tfpipe.models.detection.boxes import IGNORED, targets

    # a 2x2 grid (cells of 0.5) with a small and a wide prior, and a 1x1 grid with a large prior
    anchors, cells = yolo.layout((64, 64, 3), (32, 64), [[0.2, 0.2], [0.45, 0.2], [0.9, 0.9], [0.95, 0.95]])
    gt = np.array([[0.30, 0.55, 0.50, 0.95],    # centre (0.4, 0.75): row 0, column 1; 0.2 high, 0.4 wide
                   [0.05, 0.05, 0.95, 0.95],    # the whole image: the 1x1 grid's large prior
                   [0.55, 0.05, 0.75, 0.25]],   # centre (0.65, 0.15): row 1, column 0; small
                  np.float32)
    encoded, ids = targets(anchors, gt, np.array([4, 1, 7]), partial(yolo.assign, cells_hw=cells, threshold=0.5))
    # anchor index: cell (row * 2 + column) * 2 + prior, then the 1x1 grid's two priors (8, 9).
    # Object 0 -> cell 1's wide prior (shape IoU 0.89 against 0.5); object 2 -> cell 2's small
    # prior; object 1 (centre 0.5, 0.5 on a corner of the 2x2 grid) -> the 0.9 prior of the 1x1
    # grid, whose 0.95 prior overlaps it at IoU 0.9 and is left out of the no-object term.
    assert ids.numpy().tolist() == [0, 0, 0, 5, 8, 0, 0, 0, 2, IGNORED]
    # the encoding is YOLO's target: sigmoid(t) = the centre's offset in its cell
    from tfpipe.runtime.detection import centres, decode

    np.testing.assert_allclose(centres(decode(encoded.numpy()[[3]], anchors[[3]])), [[0.4, 0.75, 0.2, 0.4]],
                               atol=1e-6)


def test_yolo_box_loss_measures_centres_in_cells_and_sizes_in_log_units():
    from tfpipe.models.detection.yolo import YoloBoxLoss

    anchors = np.array([[0.25, 0.25, 0.2, 0.4], [0.75, 0.75, 0.5, 0.5]], np.float32)
    cells = np.full((2, 2), 0.5, np.float32)
    y_true = np.zeros((1, 2, 5), np.float32)
    y_true[0, 0, 4] = 3  # anchor 0 is responsible; its target box is the prior itself (w * h = 0.08)
    y_pred = np.zeros((1, 2, 4), np.float32)
    y_pred[0, 0, 1] = 10 * 0.5 / 0.4 * 0.25  # a quarter of a cell off in x
    y_pred[0, 0, 2] = 5 * 0.1  # t_h off by 0.1
    y_pred[0, 1] = 7.0  # a background anchor: no coordinate loss
    loss = YoloBoxLoss(anchors, cells, lambda_coord=5.0, reduction="none")(y_true, y_pred).numpy()
    np.testing.assert_allclose(loss, [5.0 * (2 - 0.08) * (0.25 ** 2 + 0.1 ** 2)], rtol=1e-5)


def test_objectness_and_class_losses_match_their_definitions_and_skip_ignored_anchors():
    from tfpipe.models.detection.yolo import ObjectnessLoss, YoloClassLoss

    ids = np.array([[2, 0, -1, 0]], np.int32)
    p = np.array([[[0.7], [0.2], [0.9], [0.1]]], np.float32)
    loss = ObjectnessLoss(lambda_noobj=0.5, reduction="none")(ids, p).numpy()
    np.testing.assert_allclose(loss, [-np.log(0.7) - 0.5 * (np.log(0.8) + np.log(0.9))], rtol=1e-5)
    probabilities = np.array([[[0.6, 0.3], [0.9, 0.9], [0.9, 0.9], [0.9, 0.9]]], np.float32)
    loss = YoloClassLoss(reduction="none")(ids, probabilities).numpy()
    np.testing.assert_allclose(loss, [-np.log(0.3) - np.log(0.4)], rtol=1e-5)  # anchor 0's class is 1


def test_training_view_trains_objectness_and_class_probabilities_also_on_a_qat_copy():
    from tfpipe import tasks
    from tfpipe.config import Config
    from tfpipe.models.registry import output_names
    from tfpipe.qat import apply_qat

    def training_view(model, name: str):
        cfg = Config(task="detection", model=ModelConfig(name, (64, 64), 3, {}))
        return tasks.get("detection").training_view(model, cfg)

    model = registry.build(ModelConfig("yolov3_tiny", (64, 64), 3, {}), "detection", 2)
    view = training_view(model, "yolov3_tiny")
    assert view.output_names == ["box_encodings", "objectness", "class_probabilities"]
    assert len(view.trainable_weights) == len(model.trainable_weights)
    qat_view = training_view(apply_qat(model), "yolov3_tiny")
    assert output_names(qat_view) == ["box_encodings", "objectness", "class_probabilities"]
    ssd = registry.build(ModelConfig("ssdlite_mnv2", (64, 64), 3, {}), "detection", 2)
    assert training_view(ssd, "ssdlite_mnv2") is ssd


@pytest.mark.parametrize("args, message", [
    ({"priors": [[0.1, 0.2], [0.3]]}, "priors must be a list of \\[width, height\\] pairs"),
    ({"priors": [[0.1, 0.2]] * 4}, "4 priors do not split evenly over 3 output grids"),
    ({"priors": [[0.1, -0.2]] * 3}, "each in \\(0, 2\\]"),
])
def test_bad_priors_are_refused_by_the_config_check(args, message):
    from tfpipe.errors import TfpipeError

    with pytest.raises(TfpipeError, match=message):
        registry.check(ModelConfig("yolov3_mnv2", (128, 128), 3, args), "detection")


CONFIG = """# a YOLO config
name: yolo_test
task: detection
data:
  builtin: fashion_scenes
model:
  name: yolov3_tiny   # the tiny variant
  input_size: [128, 128]
  channels: 3
train:
  epochs: 3
"""


def test_write_priors_edits_only_the_priors_line(tmp_path):
    from tfpipe.config import load_config
    from tfpipe.models.detection.priors import write_priors

    path = tmp_path / "yolo.yaml"
    path.write_text(CONFIG)
    priors = np.array([[0.1, 0.12], [0.2, 0.25], [0.3, 0.3], [0.4, 0.5], [0.6, 0.5], [0.8, 0.9]])
    write_priors(path, priors)
    first = path.read_text()
    assert first.startswith("# a YOLO config") and "# the tiny variant" in first
    assert load_config(path).model.args["priors"] == priors.round(4).tolist()
    write_priors(path, priors / 2)  # again: the line is replaced, not added
    assert path.read_text().count("priors:") == 1
    assert load_config(path).model.args["priors"] == (priors / 2).round(4).tolist()
    unchanged = [line for line in path.read_text().splitlines() if "priors:" not in line and "args:" not in line]
    assert unchanged == CONFIG.splitlines()


def test_model_input_sizes_follow_the_resize_policy():
    from types import SimpleNamespace

    from tfpipe.models.detection.priors import model_input_sizes

    record = SimpleNamespace(boxes=np.array([[0, 0, 100, 50]]), width=200, height=100)
    np.testing.assert_allclose(model_input_sizes([record], (128, 128), "letterbox"), [[0.5, 0.25]])
    np.testing.assert_allclose(model_input_sizes([record], (128, 128), "stretch"), [[0.5, 0.5]])


def test_yolov3_mobilenet_qat_int8_is_integer_only_and_maps_whole_on_the_edge_tpu(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from tfpipe.convert.tflite import to_tflite
    from tfpipe.delegates import edgetpu
    from tfpipe.qat import apply_qat
    from tfpipe.runtime.graph import read_graph

    cfg = ModelConfig("yolov3_mnv2", (64, 64), 3, {"width": 0.35, "filters": 32})
    qat = apply_qat(registry.build(cfg, "detection", 3))
    x = np.random.default_rng(0).random((4, 64, 64, 3), np.float32)
    path = tmp_path / "yolo_int8.tflite"
    path.write_bytes(to_tflite(qat, "int8", "uint8", x))
    interpreter = Interpreter(model_path=str(path))
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not {"DEQUANTIZE", "CUSTOM", "LEAKY_RELU"} & ops and {"LOGISTIC", "MUL", "RESIZE_NEAREST_NEIGHBOR"} <= ops
    out = interpreter.get_signature_runner()(images=np.zeros((1, 64, 64, 3), np.uint8))
    assert sorted(out) == ["box_encodings", "class_scores"]
    assert out["box_encodings"].shape == (1, len(registry.anchors(cfg, 3)), 4)
    prediction = edgetpu.predict(read_graph(path))
    assert prediction["first_unmapped"] is None and prediction["macs"]["share"] == 1.0


def test_anchors_command_refuses_a_model_without_priors_and_a_bad_count(capsys):
    from pathlib import Path

    from tests.conftest import run_cli

    configs = Path(__file__).resolve().parents[2] / "configs" / "detection"
    assert run_cli("tfpipe.data.__main__", ["anchors", "--config", str(configs / "ssdlite_mnv2.yaml")]) == 2
    err = capsys.readouterr().err
    assert "model.name: ssdlite_mnv2 has no priors" in err and "yolov3_tiny" in err
    assert run_cli("tfpipe.data.__main__", ["anchors", "--config", str(configs / "yolov3_tiny.yaml"),
                                            "--count", "0"]) == 2
    assert "--count: 0 is not accepted" in capsys.readouterr().err


def test_anchors_command_fits_the_training_boxes_and_writes_them_to_the_config(tmp_path, capsys):
    from pathlib import Path

    from tests.conftest import have_fashion_mnist, run_cli
    from tfpipe.config import load_config

    if not have_fashion_mnist():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    source = Path(__file__).resolve().parents[2] / "configs" / "detection" / "yolov3_tiny.yaml"
    path = tmp_path / "yolo.yaml"
    path.write_text(source.read_text())
    small = ["--set", "data.scenes.train=300", "--set", "data.scenes.val=20", "--set", f"data.cache={tmp_path}"]
    assert run_cli("tfpipe.data.__main__", ["anchors", "--config", str(path), "--write", *small]) == 0
    out = capsys.readouterr().out
    assert "6 priors (width, height) as fractions of the 128x128 input" in out and "mean best IoU 0." in out
    written = load_config(path, small[1::2]).model.args["priors"]
    assert len(written) == 6 and written != load_config(source).model.args["priors"]  # fitted to these 300 scenes
    areas = [w * h for w, h in written]
    assert areas == sorted(areas)  # smallest first: the finest grid's
    assert path.read_text().count("priors:") == 1


def test_yolov3_darknet53_has_the_reference_implementations_parameters():
    """With COCO's 80 classes, Keras YOLOv3 (qqwweee/keras-yolo3, Darknet's cfg) counts 62,001,757
    parameters, BatchNorm statistics included; tfpipe's adds only the 3 x 12 fixed weights of the
    layers that re-express the decoding (the 255 output channels per grid are split in four
    convolutions with the same total)."""
    model = registry.build(ModelConfig("yolov3_darknet53", (416, 416), 3, {}), "detection", 80)
    assert model.count_params() == 62_001_757 + 3 * 12
