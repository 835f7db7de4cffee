"""Semantic-segmentation metrics, all from one confusion matrix, with an ignore label (255)."""

from __future__ import annotations

import numpy as np

from tfpipe.runtime.contract import CLASS_MAP, PROBABILITIES

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


def pixel_agreement(reference: np.ndarray, other: np.ndarray, labels: np.ndarray | None = None,
                    ignore: int = IGNORE) -> dict:
    """Share of pixels where two [N, H, W] class maps agree (pixels labelled `ignore` left out when
    labels are given), overall and per image; the per-image share ranks the gallery."""
    reference, other = np.asarray(reference), np.asarray(other)
    if reference.shape != other.shape:
        raise ValueError(f"class maps of shapes {reference.shape} and {other.shape} cannot be compared")
    counted = np.ones(reference.shape, bool) if labels is None else np.asarray(labels) != ignore
    same = (reference == other) & counted
    per_image_counted = counted.reshape(len(counted), -1).sum(axis=1)
    per_image = np.divide(same.reshape(len(same), -1).sum(axis=1), per_image_counted,
                          out=np.ones(len(same)), where=per_image_counted > 0)
    total = counted.sum()
    return {"pixel_agreement": float(same.sum() / total) if total else 1.0, "per_image": per_image.tolist()}


def class_maps(outputs: dict[str, np.ndarray]) -> np.ndarray:
    """[N, H, W] class ids: the model's own `class_map` output when it has one (what a device
    reads), else the argmax of its probabilities."""
    if CLASS_MAP in outputs:
        return outputs[CLASS_MAP].astype(np.int32)
    return outputs[PROBABILITIES].argmax(axis=-1).astype(np.int32)
