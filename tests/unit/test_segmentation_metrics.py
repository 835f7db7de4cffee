import numpy as np
import pytest

from tfpipe.metrics.segmentation import confusion, pixel_agreement, segmentation_metrics


def brute_force_miou(labels, predictions, num_classes):
    ious = []
    for c in range(num_classes):
        valid = labels != 255
        tp = np.sum((labels == c) & (predictions == c) & valid)
        fp = np.sum((predictions == c) & (labels != c) & valid)
        fn = np.sum((labels == c) & (predictions != c))
        if tp + fp + fn:
            ious.append(tp / (tp + fp + fn))
    return float(np.mean(ious))


@pytest.mark.parametrize("seed", range(5))
def test_miou_matches_brute_force_and_ignores_255(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, (4, 17, 23))
    labels[rng.random(labels.shape) < 0.2] = 255
    predictions = np.where(rng.random(labels.shape) < 0.6, np.where(labels == 255, 0, labels),
                           rng.integers(0, 5, labels.shape))
    result = segmentation_metrics(confusion(labels, predictions, 5))
    assert result["miou"] == pytest.approx(brute_force_miou(labels, predictions, 5), abs=1e-12)
    valid = labels != 255
    assert result["pixel_accuracy"] == pytest.approx(np.mean(labels[valid] == predictions[valid]))


def test_ignored_pixels_do_not_count_whatever_is_predicted():
    labels = np.array([[0, 1], [255, 255]])
    good = segmentation_metrics(confusion(labels, np.array([[0, 1], [0, 0]]), 2))
    other = segmentation_metrics(confusion(labels, np.array([[0, 1], [1, 1]]), 2))
    assert good == other and good["miou"] == 1.0


def test_absent_classes_are_left_out_of_the_mean():
    result = segmentation_metrics(confusion(np.array([0, 0, 1]), np.array([0, 0, 0]), 3))
    assert result["per_class_iou"] == [2 / 3, 0.0, None]
    assert result["miou"] == pytest.approx(1 / 3)
    assert result["fw_iou"] == pytest.approx(2 / 3 * 2 / 3)
    with pytest.raises(ValueError, match="class ids must be in 0..2"):
        confusion(np.array([3]), np.array([0]), 3)


def test_pixel_agreement_leaves_out_ignored_pixels():
    reference = np.array([[[0, 1], [2, 3]], [[1, 1], [1, 1]]])
    other = np.array([[[0, 1], [2, 0]], [[1, 1], [1, 1]]])
    labels = np.array([[[0, 1], [2, 255]], [[255, 255], [255, 255]]])
    assert pixel_agreement(reference, other) == {"pixel_agreement": 7 / 8, "per_image": [0.75, 1.0]}
    # the one disagreeing pixel is void; an image with no counted pixel agrees trivially
    assert pixel_agreement(reference, other, labels) == {"pixel_agreement": 1.0, "per_image": [1.0, 1.0]}
    with pytest.raises(ValueError, match="cannot be compared"):
        pixel_agreement(reference, other[:, :1])
