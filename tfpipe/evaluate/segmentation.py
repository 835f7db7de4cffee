"""Semantic-segmentation metrics, all from one confusion matrix, with an ignore label (255)."""

from __future__ import annotations

import numpy as np

IGNORE = 255


def confusion(labels: np.ndarray, predictions: np.ndarray, num_classes: int, ignore: int = IGNORE) -> np.ndarray:
    """[true, predicted] pixel counts over every pixel whose label is not `ignore`."""
    labels, predictions = np.asarray(labels).ravel(), np.asarray(predictions).ravel()
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ")
    keep = labels != ignore
    labels, predictions = labels[keep].astype(np.int64), predictions[keep].astype(np.int64)
    if len(labels) and (labels.max() >= num_classes or predictions.max() >= num_classes or
                        labels.min() < 0 or predictions.min() < 0):
        raise ValueError(f"class ids must be in 0..{num_classes - 1} (or {ignore} in labels)")
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, num_classes)


def segmentation_metrics(matrix: np.ndarray) -> dict:
    """mIoU (over classes present in the labels or the predictions), per-class IoU (NaN where a
    class is in neither), pixel accuracy, mean class accuracy and frequency-weighted IoU."""
    matrix = np.asarray(matrix, np.float64)
    true_positive = np.diag(matrix)
    label_pixels, predicted_pixels = matrix.sum(axis=1), matrix.sum(axis=0)
    union = label_pixels + predicted_pixels - true_positive
    iou = np.divide(true_positive, union, out=np.full(len(union), np.nan), where=union > 0)
    class_accuracy = np.divide(true_positive, label_pixels, out=np.full(len(union), np.nan),
                               where=label_pixels > 0)
    total = matrix.sum()
    frequency = label_pixels / total if total else np.zeros(len(union))
    present = label_pixels > 0
    return {
        "miou": float(np.nanmean(iou)) if np.any(union > 0) else float("nan"),
        "per_class_iou": [None if np.isnan(v) else float(v) for v in iou],
        "pixel_accuracy": float(true_positive.sum() / total) if total else float("nan"),
        "mean_accuracy": float(np.nanmean(class_accuracy)) if np.any(present) else float("nan"),
        "fw_iou": float(np.sum(frequency[present] * np.nan_to_num(iou[present]))),
    }
