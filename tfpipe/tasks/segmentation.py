"""Semantic segmentation: a class per pixel (255 = void), softmax `probabilities` per pixel and
optionally an in-graph uint8 `class_map`, mIoU gate over the labelled pixels.

`SegmentationLoss` is the softmax cross-entropy averaged over the labelled pixels only (a void pixel
adds nothing to the loss or to the count), with optional per-class weights (weighted mean, as
PyTorch's CrossEntropyLoss(weight=..., ignore_index=255)) and optional soft Dice added with a weight.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe import plots
from tfpipe.backend import keras, tf
from tfpipe.config import Config
from tfpipe.data.pipeline import Splits
from tfpipe.errors import TfpipeError
from tfpipe.metrics.classification import output_agreement
from tfpipe.metrics.segmentation import IGNORE, class_maps, confusion, pixel_agreement, segmentation_metrics
from tfpipe.models.registry import MAIN_OUTPUT
from tfpipe.runtime.bundle import Contract
from tfpipe.runtime.contract import CLASS_MAP
from tfpipe.tasks.base import Gate, ReportView, Scorer, Task, compile_single_output

BACKGROUND = "background"


class Segmentation(Task):
    name = "segmentation"
    targets = "masks"
    gate = Gate("miou", "mIoU")
    report = ReportView(
        metrics=(("mIoU", "miou"), ("pixel acc", "pixel_accuracy")), agreement="agreement_pixels",
        per_class=("per_class_iou", "pixels", "IoU"),
        note="Δ columns are percentage points against the float Keras model; mIoU averages the IoU of the classes "
             "present in the labels or the predictions, over labelled pixels (255 = void left out); `agree` is the "
             "share of labelled pixels where the model's class equals the float model's; size× and lat× are "
             "relative to model_fp32.tflite; latency is batch 1 after warm-up.")

    def class_names(self, dataset_names: tuple[str, ...]) -> tuple[str, ...]:
        """Class 0 is the background; the dataset's classes follow (a class map's id c + 1 is class c)."""
        return (BACKGROUND, *dataset_names)

    def load_splits(self, cfg: Config) -> Splits:
        splits = super().load_splits(cfg)
        weights = cfg.train.class_weights
        if weights is not None and len(weights) != len(splits.class_names):
            raise TfpipeError(f"train.class_weights: {len(weights)} weights for {len(splits.class_names)} classes",
                              f"give one weight per class: {', '.join(splits.class_names)}")
        return splits

    def compile(self, model, cfg: Config, num_classes: int, optimizer, label_smoothing: float | None = None) -> None:
        """SegmentationLoss (void pixels left out, optional class weights and Dice); mIoU over the
        labelled pixels on the main output."""
        t = cfg.train
        loss = SegmentationLoss(num_classes, list(t.class_weights) if t.class_weights else None, t.dice_weight)
        metric = keras.metrics.MeanIoU(num_classes, name="miou", ignore_class=IGNORE, sparse_y_pred=False)
        compile_single_output(model, optimizer, loss, metric, t.aux_loss_weight)

    def output_contract(self, cfg: Config) -> dict[str, str]:
        h, w = cfg.model.input_size
        outputs = {MAIN_OUTPUT: f"float [1, {h}, {w}, num_classes] softmax over `classes` per pixel of the "
                                "model input (letterboxed: undo the preprocess geometry to map back)"}
        if cfg.convert.class_map:
            outputs[CLASS_MAP] = f"uint8 [1, {h}, {w}] the class index per pixel (argmax), never quantized"
        return outputs

    def missing_outputs(self, cfg: Config, names: set[str]) -> list[str]:
        # either does: the class map when a model has it (an Edge TPU build has nothing else: its
        # softmax is dropped, convert/converter.py), else the argmax of the probabilities
        return [] if names & {MAIN_OUTPUT, CLASS_MAP} else [f"{MAIN_OUTPUT} or {CLASS_MAP}"]

    def scorer(self, contract: Contract, targets, gallery: int) -> Scorer:
        return SegmentationScorer(np.asarray(targets), gallery, len(contract.classes))

    def held_out_score(self, outputs: dict[str, np.ndarray], targets) -> float:
        return segmentation_metrics(confusion(targets, class_maps(outputs), outputs[MAIN_OUTPUT].shape[-1]))["miou"]

    def plots(self, report: dict, plot_dir: Path) -> dict[str, Path]:
        by_model = {m["name"]: m["metrics"] for m in report["models"] if m.get("status", "ok") == "ok"}
        return {"IoU per class": plots.iou_bars(by_model, report["dataset"]["classes"], plot_dir / "iou.png")}

    def gallery(self, report: dict, row: dict, images: dict[int, np.ndarray], drawn: dict, path: Path) -> Path:
        return plots.segmentation_gallery(report, row, images, drawn, path)


class SegmentationScorer(Scorer):
    def __init__(self, labels: np.ndarray, gallery: int, num_classes: int):
        self.labels, self.gallery, self.num_classes = labels, gallery, num_classes

    def score(self, outputs: dict[str, np.ndarray], float_outputs: dict[str, np.ndarray] | None = None) -> dict:
        """mIoU and friends from one confusion matrix over the labelled pixels; against the float
        model: pixel agreement and the images where the class maps differ most (for the gallery)."""
        predicted = class_maps(outputs)
        matrix = confusion(self.labels, predicted, self.num_classes)
        metrics = {**segmentation_metrics(matrix), "confusion": matrix.tolist()}
        if float_outputs is None:
            return {"metrics": metrics}
        float_predicted = class_maps(float_outputs)
        float_metrics = self.reference(float_outputs)["metrics"]
        agreement = pixel_agreement(float_predicted, predicted, self.labels)
        per_image = np.array(agreement["per_image"])
        return {
            "metrics": metrics,
            "delta_points": {k: 100 * (metrics[k] - float_metrics[k]) for k in ("miou", "pixel_accuracy")},
            "delta_per_class_points": [None if m is None or f is None else 100 * (m - f) for m, f in
                                       zip(metrics["per_class_iou"], float_metrics["per_class_iou"], strict=True)],
            "agreement_pixels": agreement["pixel_agreement"],
            # an Edge TPU build gives the class map alone: its agreement is the pixel agreement above
            "outputs": {MAIN_OUTPUT: output_agreement(float_outputs[MAIN_OUTPUT], outputs[MAIN_OUTPUT])}
            if MAIN_OUTPUT in outputs else {},
            "worst_disagreements": [{"index": int(i), "pixel_agreement": float(per_image[i])}
                                    for i in np.argsort(per_image, kind="stable")[:self.gallery]],
        }

    def gallery_items(self, outputs: dict[str, np.ndarray], scored: dict, indices: list[int]) -> dict:
        predicted = class_maps(outputs)
        return {i: predicted[i] for i in indices}

    def reference_items(self, float_outputs: dict[str, np.ndarray], indices: list[int]) -> dict[str, dict]:
        float_maps = class_maps(float_outputs)
        return {"truth": {i: self.labels[i] for i in indices}, "float": {i: float_maps[i] for i in indices}}


@keras.utils.register_keras_serializable(package="tfpipe")
class SegmentationLoss(keras.losses.Loss):
    def __init__(self, num_classes: int, class_weights: list[float] | None = None, dice_weight: float = 0.0,
                 ignore_index: int = IGNORE, name: str = "segmentation_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if class_weights is not None and len(class_weights) != num_classes:
            raise ValueError(f"class_weights has {len(class_weights)} values for {num_classes} classes")
        self.num_classes, self.class_weights = num_classes, class_weights
        self.dice_weight, self.ignore_index = dice_weight, ignore_index

    def call(self, y_true, y_pred):
        labels = tf.cast(tf.reshape(y_true, tf.shape(y_pred)[:-1]), tf.int32)
        valid = tf.cast(tf.not_equal(labels, self.ignore_index), y_pred.dtype)
        safe = tf.where(labels == self.ignore_index, 0, labels)
        one_hot = tf.one_hot(safe, self.num_classes, dtype=y_pred.dtype)
        probabilities = tf.clip_by_value(y_pred, 1e-7, 1.0)
        nll = -tf.reduce_sum(one_hot * tf.math.log(probabilities), axis=-1)
        weights = valid
        if self.class_weights is not None:
            weights = weights * tf.gather(tf.constant(self.class_weights, y_pred.dtype), safe)
        axes = tf.range(1, tf.rank(nll))
        # per image: the weighted mean over its labelled pixels (an all-void image contributes 0)
        loss = tf.math.divide_no_nan(tf.reduce_sum(nll * weights, axes), tf.reduce_sum(weights, axes))
        if self.dice_weight:
            mask = valid[..., None]
            spatial = tf.range(1, tf.rank(y_pred) - 1)
            overlap = tf.reduce_sum(one_hot * y_pred * mask, spatial)
            total = tf.reduce_sum((one_hot + y_pred) * mask, spatial)
            dice = tf.reduce_mean((2 * overlap + 1) / (total + 1), axis=-1)  # per class, smoothed by 1
            loss = loss + self.dice_weight * (1 - dice)
        return loss

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "class_weights": self.class_weights,
                "dice_weight": self.dice_weight, "ignore_index": self.ignore_index}
