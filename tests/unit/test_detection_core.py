"""Anchors, box coding, target assignment, k-means priors and NMS, against the lectures' worked
numbers and independent references."""

import numpy as np
import pytest

from tfpipe.models.detection import anchors as A
from tfpipe.runtime import detection as D


def xyxy_to_yxhw(xyxy):
    xyxy = np.asarray(xyxy, np.float32)
    return D.centres(xyxy[:, [1, 0, 3, 2]])


def test_multibox_counts_and_the_lectures_anchor():
    """D2L 14.4.1: a 561 x 728 image, sizes 0.75/0.5/0.25, ratios 1/2/0.5: 5 anchors per pixel, and
    the first anchor at pixel (250, 250) is (xmin, ymin, xmax, ymax) = (0.06, 0.07, 0.63, 0.82)."""
    sizes, ratios = (0.75, 0.5, 0.25), (1, 2, 0.5)
    assert len(A.per_location(sizes, ratios)) == len(sizes) + len(ratios) - 1
    boxes = A.multibox((561, 728), sizes, ratios, image_size=(561, 728))
    assert boxes.shape == (561 * 728 * 5, 4)
    ymin, xmin, ymax, xmax = D.corners(boxes.reshape(561, 728, 5, 4)[250, 250, 0])
    np.testing.assert_allclose([xmin, ymin, xmax, ymax], [0.06, 0.07, 0.63, 0.82], atol=0.005)


def test_multibox_shapes_keep_the_ratio_and_area_in_pixels():
    image = (96, 128)
    boxes = A.multibox((3, 4), (0.5, 0.25), (1, 2, 0.5), image_size=image).reshape(3, 4, 4, 4)
    height_px, width_px = boxes[0, 0, :, 2] * image[0], boxes[0, 0, :, 3] * image[1]
    np.testing.assert_allclose(width_px / height_px, [1, 1, 2, 0.5], rtol=1e-5)
    np.testing.assert_allclose(width_px * height_px, [(s * image[0]) ** 2 for s in (0.5, 0.25, 0.5, 0.5)], rtol=1e-5)
    np.testing.assert_allclose(boxes[:, :, 0, 0], np.broadcast_to([[1 / 6], [3 / 6], [5 / 6]], (3, 4)))
    np.testing.assert_allclose(boxes[:, :, 0, 1], np.broadcast_to([1 / 8, 3 / 8, 5 / 8, 7 / 8], (3, 4)))
    assert A.pyramid([(3, 4), (2, 2)], [(0.2, 0.3), (0.5, 0.6)], (1, 2), image).shape == ((12 + 4) * 3, 4)


def test_ssd_sizes_follow_the_paper():
    sizes = A.ssd_sizes(4, 0.2, 0.9)
    np.testing.assert_allclose([s for s, _ in sizes], [0.2, 0.375, 0.55, 0.725])
    np.testing.assert_allclose(sizes[0][1], np.sqrt(0.2 * 0.375))


def test_encode_then_decode_round_trips():
    from tfpipe.backend import tf
    from tfpipe.models.detection import boxes as B

    rng = np.random.default_rng(0)
    anchors = A.multibox((4, 4), (0.3, 0.5), (1, 2, 0.5))
    low = rng.uniform(0, 0.6, (len(anchors), 2))
    gt = np.concatenate([low, low + rng.uniform(0.05, 0.4, (len(anchors), 2))], axis=1).astype(np.float32)
    encoded = B.encode(B.to_centres(tf.constant(gt)), tf.constant(anchors)).numpy()
    np.testing.assert_allclose(D.decode(encoded, anchors), gt, atol=1e-5)
    np.testing.assert_allclose(B.to_corners(tf.constant(anchors)).numpy(), D.corners(anchors), atol=1e-7)


def test_assignment_reproduces_the_lectures_worked_case():
    """D2L 14.4.3: a dog and a cat, five anchors. Anchor 1 is the dog's, anchors 2 and 4 the cat's,
    0 and 3 background; the offsets are the book's (its x, y, w, h order turned to y, x, h, w)."""
    from tfpipe.backend import tf
    from tfpipe.models.detection import boxes as B

    gt_xyxy = [[0.1, 0.08, 0.52, 0.92], [0.55, 0.2, 0.9, 0.88]]
    anchors_xyxy = [[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98],
                    [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]]
    anchors = xyxy_to_yxhw(anchors_xyxy)
    gt = np.asarray(gt_xyxy, np.float32)[:, [1, 0, 3, 2]]
    encoded, classes = B.targets(tf.constant(anchors), tf.constant(gt), tf.constant([0.0, 1.0]))
    assert classes.numpy().tolist() == [0, 1, 2, 0, 2]
    expected = np.zeros((5, 4))
    expected[1] = [10.0, 1.40, 7.18, 2.59]
    expected[2] = [0.269, -1.20, -1.57, 1.68]
    expected[4] = [-1.00, -0.571, 0.626, 0.0]
    np.testing.assert_allclose(encoded.numpy(), expected, atol=0.01)


def test_each_ground_truth_takes_its_best_free_anchor_first():
    """Both boxes' best anchor is anchor 0 and neither reaches the threshold anywhere else: the
    pair with the larger IoU takes it, the other ground truth its next best anchor, and an anchor
    under the threshold that no ground truth needs stays background."""
    from tfpipe.backend import tf
    from tfpipe.models.detection import boxes as B

    anchors = xyxy_to_yxhw([[0.0, 0.0, 0.4, 0.4], [0.3, 0.0, 0.7, 0.4], [0.6, 0.6, 1.0, 1.0]])
    gt = np.array([[0.0, 0.0, 0.35, 0.35], [0.0, 0.12, 0.4, 0.5]], np.float32)  # yxyx
    overlaps = D.iou(D.corners(anchors), gt)
    assert overlaps.argmax(axis=0).tolist() == [0, 0] and overlaps[0, 0] > overlaps[0, 1]
    matched = B.assign(tf.constant(anchors), tf.constant(gt), threshold=0.9).numpy()
    assert matched.tolist() == [0, 1, -1]
    assert B.assign(tf.constant(anchors), tf.zeros((0, 4)), 0.5).numpy().tolist() == [-1, -1, -1]


def test_kmeans_recovers_known_priors():
    rng = np.random.default_rng(1)
    true = np.array([[8, 10], [20, 40], [60, 30]], np.float64)
    wh = np.concatenate([t * rng.uniform(0.93, 1.07, (300, 2)) for t in true])
    priors = A.kmeans_priors(wh, 3, seed=0)
    np.testing.assert_allclose(priors, true, rtol=0.05)
    assert A.mean_best_iou(wh, priors) > 0.85
    with pytest.raises(ValueError, match="at least k=3 boxes"):
        A.kmeans_priors(wh[:2], 3)


def brute_force_nms(boxes, scores, iou_threshold, score_threshold):
    """The definition, checked box by box: per class, a candidate is kept exactly when no kept
    candidate of a higher score overlaps it by more than the threshold."""
    kept = []
    for c in range(scores.shape[1]):
        order = sorted((i for i in range(len(boxes)) if scores[i, c] > score_threshold), key=lambda i: -scores[i, c])
        chosen = []
        for i in order:
            if all(D.iou(boxes[[i]], boxes[[j]])[0, 0] <= iou_threshold for j in chosen):
                chosen.append(i)
        kept += [(scores[i, c], c, i) for i in chosen]
    return sorted(kept, key=lambda k: -k[0])


@pytest.mark.parametrize("seed", range(5))
def test_nms_matches_the_brute_force_definition(seed):
    rng = np.random.default_rng(seed)
    centre = rng.uniform(0.2, 0.8, (60, 2))
    size = rng.uniform(0.05, 0.3, (60, 2))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)
    scores = rng.uniform(0, 1, (60, 3)).astype(np.float32)
    got_boxes, got_classes, got_scores = D.nms(boxes, scores, 0.45, 0.3, max_per_class=100, max_total=1000)
    expected = brute_force_nms(boxes, scores, 0.45, 0.3)
    assert [int(c) for c in got_classes] == [c for _, c, _ in expected]
    np.testing.assert_array_equal(got_scores, [s for s, _, _ in expected])
    np.testing.assert_array_equal(got_boxes, boxes[[i for _, _, i in expected]])
    assert len(D.nms(boxes, scores, 0.45, 0.3, max_per_class=2, max_total=5)[0]) == 5


def test_nms_with_nothing_above_the_threshold_is_empty():
    boxes, classes, scores = D.nms(np.zeros((4, 4)), np.full((4, 2), 0.01), 0.5, 0.05)
    assert boxes.shape == (0, 4) and classes.shape == (0,) and scores.shape == (0,)
