"""tfpipe.runtime.collapse: outputs that carry nothing are named with their likely cause."""

import numpy as np

from tfpipe.runtime.collapse import collapsed


def test_nan_constant_and_all_zero_outputs_are_named():
    rng = np.random.default_rng(0)
    varying = rng.uniform(size=(20, 10)).astype(np.float32)
    nan = varying.copy()
    nan[3, 2] = np.nan
    found = collapsed({"a": nan, "b": np.full((20, 10), 0.1, np.float32), "c": np.zeros((20, 10), np.float32),
                       "ok": varying}, reference={"b": varying, "c": varying, "ok": varying})
    assert found[0] == "output 'a': 1 of 200 values are NaN or inf (a float op overflowed, or the file is broken)"
    assert found[1].startswith("output 'b' is the same for all 20 samples while the float model's varies: its "
                               "quantization range collapsed (calibration images with no signal, e.g. all black")
    assert found[2].startswith("output 'c' is all zeros while the float model's varies")
    assert len(found) == 3


def test_scores_squeezed_by_box_coordinates_in_one_tensor_are_named_by_channel():
    """[N, anchors, 4 + 3]: boxes in pixels (0..96) and scores in 0..1 under one scale of 96/255."""
    rng = np.random.default_rng(1)
    boxes = rng.uniform(0, 96, size=(30, 64, 4))
    scores = rng.uniform(0, 1, size=(30, 64, 3))
    reference = np.concatenate([boxes, scores], axis=-1)
    scale = 96 / 255
    quantized = np.round(reference / scale) * scale
    [found] = collapsed({"detections": quantized}, {"detections": reference}, {"detections": scale})
    assert found.startswith("output 'detections': channel(s) 4, 5, 6 span at most 1, 2.7 steps of its int8 scale")
    assert "share one tensor and one scale; export them as separate outputs" in found
    # separate outputs, or class probabilities on a 1/256 scale (a rare class included), pass
    probabilities = rng.dirichlet(np.r_[np.ones(9), 0.01], size=200)
    assert collapsed({"boxes": boxes, "scores": scores, "probabilities": probabilities},
                     {"boxes": boxes, "scores": scores, "probabilities": probabilities},
                     {"boxes": scale, "scores": 1 / 256, "probabilities": 1 / 256}) == []
