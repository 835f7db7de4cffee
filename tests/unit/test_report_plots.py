"""The detection and segmentation plots draw from the metric dicts the evaluator produces."""

import numpy as np

from tfpipe import plots
from tfpipe.metrics.detection import ImageBoxes, coco_metrics
from tfpipe.metrics.segmentation import confusion, segmentation_metrics

PNG = b"\x89PNG\r\n\x1a\n"


def test_pr_curves_one_panel_per_class(tmp_path):
    rng = np.random.default_rng(0)
    gt, float_pred, int8_pred = [], [], []
    for _ in range(20):
        boxes = np.sort(rng.uniform(0, 100, (3, 4)).reshape(3, 2, 2), axis=1).reshape(3, 4)[:, [0, 2, 1, 3]]
        boxes[:, 2:] += 5
        classes = rng.integers(0, 3, 3)
        gt.append(ImageBoxes(boxes, classes))
        float_pred.append(ImageBoxes(boxes + rng.normal(0, 1, boxes.shape), classes, scores=rng.uniform(0.5, 1, 3)))
        int8_pred.append(ImageBoxes(boxes + rng.normal(0, 4, boxes.shape), classes, scores=rng.uniform(0.2, 1, 3)))
    metrics = {"float": coco_metrics(gt, float_pred, 3), "int8": coco_metrics(gt, int8_pred, 3)}
    assert metrics["float"]["AP50"] > metrics["int8"]["AP"]
    path = plots.pr_curves(metrics, ["shirt", "bag", "boot"], tmp_path / "pr.png")
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000


def test_iou_bars_skip_absent_classes(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, (2, 16, 16))  # class 3 appears nowhere: its IoU is None
    metrics = {name: segmentation_metrics(confusion(labels, np.where(rng.random(labels.shape) < p, labels, 0), 4))
               for name, p in (("float", 0.95), ("int8", 0.9))}
    assert metrics["float"]["per_class_iou"][3] is None
    path = plots.iou_bars(metrics, ["background", "shirt", "bag", "boot"], tmp_path / "iou.png")
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000


def test_training_curves_read_the_history_and_name_the_gap(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,accuracy,loss,update_ratio,val_accuracy,val_loss\n"
                       "0,0.62,1.34,0.0014,0.81,0.88\n1,0.83,0.88,0.0012,0.85,0.82\n2,0.95,0.60,0.0009,0.86,0.75\n")
    out = plots.training_curves(history, tmp_path / "training.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots._history_metric(["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]) == "accuracy"
    assert plots._history_metric(["epoch", "loss", "miou", "val_loss", "val_miou"]) == "miou"
    assert plots._history_metric(["epoch", "aux_loss", "probabilities_accuracy", "val_probabilities_accuracy"]) \
        == "probabilities_accuracy"
    assert plots._history_metric(["epoch", "loss", "box_loss", "val_loss", "val_box_loss"]) is None  # detection
    assert [plots.gap_verdict(p) for p in (9.0, 3.0, 0.2, -1.0)] == [
        "big: over-fitting", "small", "none: room for capacity", "none: room for capacity"]
    history.write_text("epoch,loss\n")
    assert plots.training_curves(history, tmp_path / "empty.png") is None


def test_layer_statistics_and_update_ratios_are_drawn_from_their_csv_files(tmp_path):
    stats = tmp_path / "layer_stats.csv"
    lines = ["step,layer,kind,mean,std,zero_share"]
    for step in (0, 200, 400):
        for i, layer in enumerate(("conv1", "relu1", "conv2", "relu2")):
            kind = "activation" if layer.startswith("relu") else "output"
            lines.append(f"{step},{layer},{kind},{0.1 * i},{1.0 / (i + 1)},{0.5 if kind == 'activation' else 0}")
            if kind == "output":
                lines.append(f"{step},{layer},gradient,0,{1e-3 * (i + 1)},0")
    stats.write_text("\n".join(lines) + "\n")
    assert plots.layer_statistics(stats, tmp_path / "layers.png").read_bytes()[:8] == PNG
    ratios = tmp_path / "update_ratio.csv"
    ratios.write_text("step,kernel,ratio\n50,conv1/kernel,0.002\n50,conv2/kernel,0.0005\n"
                      "100,conv1/kernel,0.001\n100,conv2/kernel,0.0004\n")
    assert plots.update_ratios(ratios, tmp_path / "ratios.png").read_bytes()[:8] == PNG
    stats.write_text("step,layer,kind,mean,std,zero_share\n")
    ratios.write_text("step,kernel,ratio\n")
    assert plots.layer_statistics(stats, tmp_path / "a.png") is None
    assert plots.update_ratios(ratios, tmp_path / "b.png") is None
