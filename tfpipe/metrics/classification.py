"""Classification metrics from scores (numpy only, shared by every model and runtime)."""

from __future__ import annotations

import numpy as np


def top_k_hits(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Boolean [N]: the label is among the k highest scores. Ties count against the label (a hit
    needs fewer than k OTHER classes scoring at least as high), so a quantized model whose scores
    collapse to equal values cannot score by luck of sort order."""
    k = min(k, scores.shape[1])
    label_scores = scores[np.arange(len(labels)), labels]
    others_at_least = (scores >= label_scores[:, None]).sum(axis=1) - 1
    return others_at_least < k


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    return float(top_k_hits(scores, labels, k).mean())


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """[true, predicted] counts."""
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    totals = confusion.sum(axis=1)
    return np.divide(np.diag(confusion), totals, out=np.zeros(len(totals)), where=totals > 0)


def classification_metrics(scores: np.ndarray, labels: np.ndarray) -> dict:
    num_classes = scores.shape[1]
    predictions = scores.argmax(axis=1)
    confusion = confusion_matrix(labels, predictions, num_classes)
    return {
        "top1": top_k_accuracy(scores, labels, 1),
        "top5": top_k_accuracy(scores, labels, 5),
        "per_class_top1": per_class_accuracy(confusion).tolist(),
        "confusion": confusion.tolist(),
    }


def output_agreement(reference: np.ndarray, other: np.ndarray) -> dict:
    """How close one output tensor is to the float model's: max |difference| and mean cosine."""
    a = reference.reshape(len(reference), -1).astype(np.float64)
    b = other.reshape(len(other), -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosine = np.divide((a * b).sum(axis=1), norms, out=np.ones(len(a)), where=norms > 0)
    return {"max_abs_error": float(np.abs(a - b).max()), "cosine_similarity": float(cosine.mean()),
            "min_cosine_similarity": float(cosine.min())}


def disagreement(reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: whether the top-1 class differs, and the total-variation distance between the two
    probability vectors (0 = identical, 1 = disjoint). Ranks the gallery of worst disagreements."""
    flipped = reference.argmax(axis=1) != other.argmax(axis=1)
    distance = 0.5 * np.abs(reference.astype(np.float64) - other.astype(np.float64)).sum(axis=1)
    return flipped, distance
