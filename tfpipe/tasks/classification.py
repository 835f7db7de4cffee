"""Image classification: one label per image, softmax `probabilities`, top-1 gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe import plots
from tfpipe.backend import keras
from tfpipe.config import Config
from tfpipe.metrics.classification import classification_metrics, disagreement, output_agreement, top_k_accuracy
from tfpipe.models.registry import MAIN_OUTPUT
from tfpipe.runtime.bundle import Contract
from tfpipe.tasks.base import Gate, ReportView, Scorer, Task, compile_single_output


class Classification(Task):
    name = "classification"
    targets = "labels"
    gate = Gate("top1", "top-1")
    snapshot_ensembles = True
    report = ReportView(
        metrics=(("top-1", "top1"), ("top-5", "top5")), agreement="agreement_top1",
        per_class=("per_class_top1", "images", "top-1"),
        note="Δ columns are percentage points against the float Keras model; `agree` is the share of images "
             "where the model's top-1 class equals the float model's; size× and lat× are relative to "
             "model_fp32.tflite; latency is batch 1 after warm-up.")

    def compile(self, model, cfg: Config, num_classes: int, optimizer, label_smoothing: float | None = None) -> None:
        """Cross-entropy with label smoothing; accuracy on the main output."""
        t = cfg.train
        loss = keras.losses.CategoricalCrossentropy(
            label_smoothing=t.label_smoothing if label_smoothing is None else label_smoothing)
        compile_single_output(model, optimizer, loss, keras.metrics.CategoricalAccuracy(name="accuracy"),
                              t.aux_loss_weight)

    def output_contract(self, cfg: Config) -> dict[str, str]:
        return {MAIN_OUTPUT: "float [1, num_classes] softmax over `classes`, in their order"}

    def scorer(self, contract: Contract, targets, gallery: int) -> Scorer:
        return ClassificationScorer(np.asarray(targets), gallery)

    def held_out_score(self, outputs: dict[str, np.ndarray], targets) -> float:
        return top_k_accuracy(outputs[MAIN_OUTPUT], targets, 1)

    def plots(self, report: dict, plot_dir: Path) -> dict[str, Path]:
        return {"confusion matrices": plots.confusions(report, plot_dir / "confusion.png")}

    def gallery(self, report: dict, row: dict, images: dict[int, np.ndarray], drawn: dict, path: Path) -> Path:
        return plots.classification_gallery(report, row, images, path)


class ClassificationScorer(Scorer):
    def __init__(self, labels: np.ndarray, gallery: int):
        self.labels, self.gallery = labels, gallery

    def score(self, outputs: dict[str, np.ndarray], float_outputs: dict[str, np.ndarray] | None = None) -> dict:
        """top-1, top-5 and per-class top-1; against the float model: deltas, top-1 agreement,
        output agreement and the images where they disagree most."""
        scores = outputs[MAIN_OUTPUT]
        metrics = classification_metrics(scores, self.labels)
        if float_outputs is None:
            return {"metrics": metrics}
        float_scores = float_outputs[MAIN_OUTPUT]
        float_metrics = self.reference(float_outputs)["metrics"]
        return {
            "metrics": metrics,
            "delta_points": {k: 100 * (metrics[k] - float_metrics[k]) for k in ("top1", "top5")},
            "delta_per_class_points": [100 * (m - f) for m, f in zip(metrics["per_class_top1"],
                                                                     float_metrics["per_class_top1"], strict=True)],
            "agreement_top1": float((scores.argmax(1) == float_scores.argmax(1)).mean()),
            "outputs": {MAIN_OUTPUT: output_agreement(float_scores, scores)},
            "worst_disagreements": self._worst(float_scores, scores),
        }

    def _worst(self, float_scores: np.ndarray, scores: np.ndarray) -> list[dict]:
        """The images where the model disagrees most with the float model (for the gallery)."""
        flipped, distance = disagreement(float_scores, scores)
        order = np.lexsort((-distance, ~flipped))[:self.gallery]  # top-1 flips first, then by distance
        return [{"index": int(i), "label": int(self.labels[i]),
                 "float_class": int(float_scores[i].argmax()), "float_score": float(float_scores[i].max()),
                 "model_class": int(scores[i].argmax()), "model_score": float(scores[i].max()),
                 "top1_differs": bool(flipped[i]), "distance": float(distance[i])} for i in order]
