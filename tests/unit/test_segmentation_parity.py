"""Segmentation parity pieces, on hand-made outputs: scoring against the float model, the class-map
output, the report's tables and gallery, and the config rules of the segmentation task."""

import numpy as np
import pytest

from tfpipe.errors import TfpipeError


def probabilities(class_map: np.ndarray, num_classes: int = 3) -> np.ndarray:
    """A softmax-like output whose argmax is `class_map`: 0.6 on the class, the rest shared."""
    out = np.full((*class_map.shape, num_classes), 0.4 / (num_classes - 1), np.float32)
    np.put_along_axis(out, class_map[..., None], 0.6, axis=-1)
    return out


def test_scores_compare_class_maps_over_labelled_pixels_and_rank_the_worst_images():
    from tfpipe.tasks.segmentation import SegmentationScorer

    labels = np.array([[[0, 1], [2, 255]], [[0, 0], [1, 1]], [[2, 2], [2, 2]]])
    float_map = np.array([[[0, 1], [2, 0]], [[0, 0], [1, 1]], [[2, 2], [2, 1]]])
    model_map = np.array([[[0, 1], [1, 2]], [[0, 0], [1, 1]], [[2, 2], [1, 1]]])
    float_outputs = {"probabilities": probabilities(float_map)}
    scorer = SegmentationScorer(labels, gallery=2, num_classes=3)
    scored = scorer.score({"probabilities": probabilities(model_map)}, float_outputs)
    # model vs labels over the 11 labelled pixels (the void one, predicted 2, is left out):
    # class 0: tp 3 of 3 labelled, 3 predicted -> 1; class 1: tp 3, 3 labelled, 6 predicted -> 3/6;
    # class 2: tp 2, 5 labelled, 2 predicted -> 2/5
    assert scored["metrics"]["per_class_iou"] == pytest.approx([1.0, 0.5, 0.4])
    assert scored["metrics"]["miou"] == pytest.approx(1.9 / 3)
    assert scored["metrics"]["pixel_accuracy"] == pytest.approx(8 / 11)
    # an Edge TPU build gives the class map alone (its softmax dropped): the same scores
    alone = scorer.score({"class_map": model_map.astype(np.uint8)}, float_outputs)
    assert alone["metrics"] == scored["metrics"] and alone["agreement_pixels"] == scored["agreement_pixels"]
    assert alone["outputs"] == {}
    # float: class 0 1, class 1 3/4 (4 predicted), class 2 4/5 (4 predicted, all right) -> mIoU 2.55 / 3
    assert scored["delta_points"]["miou"] == pytest.approx(100 * (1.9 - 2.55) / 3)
    assert scored["delta_per_class_points"] == pytest.approx([0.0, -25.0, -40.0])
    # the void pixel (where the maps also differ) is not counted: 2 of 11 labelled pixels differ
    assert scored["agreement_pixels"] == pytest.approx(9 / 11)
    assert [w["index"] for w in scored["worst_disagreements"]] == [0, 2]
    assert scored["worst_disagreements"][0]["pixel_agreement"] == pytest.approx(2 / 3)


def test_a_class_map_output_is_scored_instead_of_the_probabilities():
    from tfpipe.metrics.segmentation import class_maps

    maps = np.array([[[1, 2], [0, 1]]])
    outputs = {"probabilities": probabilities(np.zeros_like(maps)), "class_map": maps.astype(np.float32)}
    np.testing.assert_array_equal(class_maps(outputs), maps)
    np.testing.assert_array_equal(class_maps({"probabilities": outputs["probabilities"]}), np.zeros_like(maps))


def test_the_class_map_is_the_argmax_of_the_logits_as_uint8():
    from tfpipe.backend import keras, tf
    from tfpipe.convert.tflite import serving_function
    from tfpipe.models.segmentation.common import classify

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, classify(keras.layers.Conv2D(4, 3, padding="same")(inputs), 5))
    serve = serving_function(model, class_map=True)
    x = tf.random.normal((1, 8, 8, 3))
    out = serve(x)
    assert out["class_map"].dtype == tf.uint8 and out["class_map"].shape == (1, 8, 8)
    np.testing.assert_array_equal(out["class_map"].numpy(), out["probabilities"].numpy().argmax(-1))
    plain = keras.Model(inputs, keras.layers.Conv2D(2, 1, name="scores")(inputs))
    with pytest.raises(TfpipeError, match="has no `probabilities` layer"):
        serving_function(plain, class_map=True)


def segmentation_report() -> dict:
    metrics = {"miou": 0.5, "pixel_accuracy": 0.9, "per_class_iou": [0.9, 0.1, None], "confusion": [[9, 1, 0],
                                                                                                   [1, 1, 0],
                                                                                                   [0, 0, 0]]}
    converted = {"name": "int8", "kind": "tflite", "status": "ok", "file": "x/model_int8.tflite", "size_bytes": 2048,
                 "metrics": {**metrics, "miou": 0.49}, "delta_points": {"miou": -1.0, "pixel_accuracy": 0.0},
                 "delta_per_class_points": [0.0, -2.0, None], "agreement_pixels": 0.97,
                 "outputs": {"probabilities": {"cosine_similarity": 0.999, "max_abs_error": 0.1}},
                 "latency_ms": {"median": 2.0, "p90": 2.5, "runs": 5, "warmup": 1, "threads": 1},
                 "worst_disagreements": [{"index": 3, "pixel_agreement": 0.5}]}
    return {"task": "segmentation", "run": "runs/x", "threads": 1, "workers": 1,
            "dataset": {"name": "fashion_scenes", "split": "val", "samples": 4, "classes": ["background", "a", "b"]},
            "gate": {"metric": "miou", "max_drop_points": 1.0, "passed": True, "failures": []},
            "models": [{"name": "float", "kind": "keras", "status": "ok", "file": "x/model.keras", "metrics": metrics},
                       converted]}


def test_the_report_speaks_miou_and_draws_the_maps(tmp_path, capsys):
    from tfpipe.evaluate.result import Evaluation
    from tfpipe.report import per_class_rows, publish, table_rows

    report = segmentation_report()
    rows = table_rows(report)
    assert rows[0][:5] == ["model", "mIoU", "pixel acc", "ΔmIoU pts", "agree"]
    assert rows[2][:5] == ["int8", "0.4900", "0.9000", "-1.00", "0.9700"]
    per_class = per_class_rows(report)
    assert per_class[0] == ["class", "pixels", "float IoU", "Δint8 pts"]
    assert per_class[3] == ["b", "0", "-", "-"]  # a class in neither labels nor predictions
    maps = {name: {3: np.array([[0, 1], [2, 255]])} for name in ("truth", "float", "int8")}
    evaluation = Evaluation(report, {3: np.zeros((2, 2, 3), np.uint8)}, maps)
    assert publish(evaluation, tmp_path) == 0
    assert "no converted model lost more than 1 mIoU points" in capsys.readouterr().out
    assert (tmp_path / "plots" / "gallery_int8.png").stat().st_size > 5_000
    assert (tmp_path / "plots" / "iou.png").is_file() and not (tmp_path / "plots" / "confusion.png").exists()


@pytest.mark.parametrize("settings, message", [
    ({"train": {"class_weights": [0.0] * 11}}, "train.class_weights: [0.0, 0.0"),
    ({"task": "classification", "data": {"builtin": None}, "train": {"dice_weight": 0.5}},
     "train.dice_weight: 0.5 needs task: segmentation"),
    ({"task": "classification", "data": {"builtin": None}, "convert": {"class_map": True}},
     "convert.class_map: true needs task: segmentation"),
])
def test_segmentation_settings_are_checked_across_fields(settings, message):
    from tfpipe.config import Config, _build

    base = {"task": "segmentation", "data": {"builtin": "fashion_scenes"}, "model": {"name": "unet_lite"}}
    merged = {**base, **settings, "data": {**base["data"], **settings.get("data", {})}}
    with pytest.raises(TfpipeError) as e:
        _build(Config, merged).validate()
    assert str(e.value.message).startswith(message)
