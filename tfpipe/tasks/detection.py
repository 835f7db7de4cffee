"""Object detection: boxes and classes per image; raw outputs (`box_encodings`, `class_scores`)
relative to the model's anchors, or TFLite_Detection_PostProcess's detections in a converted
model; COCO mAP gate (pycocotools). A detector family's own pieces (anchors, losses, targets,
training view, float-kept layers) come from its head (models/detection/head.py), found through
the registry: this module knows no family."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe import plots
from tfpipe.backend import tf
from tfpipe.config import Config
from tfpipe.data.pipeline import Splits
from tfpipe.errors import TfpipeError
from tfpipe.metrics.classification import output_agreement
from tfpipe.metrics.detection import COCO_STATS, ImageBoxes, coco_metrics, detection_agreement
from tfpipe.models import registry
from tfpipe.models.registry import output_names
from tfpipe.runtime.bundle import Contract
from tfpipe.runtime.contract import BOXES, POSTPROCESS_OUTPUTS, SCORES
from tfpipe.runtime.detection import SCALES
from tfpipe.tasks.base import Gate, ReportView, Scorer, Task


class Detection(Task):
    name = "detection"
    targets = "boxes"
    gate = Gate("map", "mAP")
    report = ReportView(
        metrics=(("mAP", "map"), ("mAP@.5", "map50")), agreement="agreement_boxes",
        per_class=("per_class_ap", "boxes", "AP"),
        note="Δ columns are percentage points against the float Keras model; mAP is COCO's AP@[.5:.95] "
             "(pycocotools), mAP@.5 its AP at IoU 0.5; every model is decoded as the bundle's model.json says "
             "(raw outputs, the float model's too, by one decoding and NMS on its anchors; a .tflite ending in "
             "TFLite_Detection_PostProcess from its own detections); `agree` is the share of the float model's "
             "boxes that the model reproduces (same class, IoU >= 0.5); size× and lat× are relative to "
             "model_fp32.tflite; latency is batch 1 after warm-up.")
    selective = False

    def _head(self, cfg: Config):
        head = registry.head(cfg.model)
        if head is None:
            raise TfpipeError(f"model.name: {cfg.model.name} has no detector head",
                              f"detection models: {', '.join(registry.names(self.name))}")
        return head

    def compile(self, model, cfg: Config, num_classes: int, optimizer, label_smoothing: float | None = None) -> None:
        """The head's loss for each output of its training view."""
        losses = self._head(cfg).losses(cfg.detection, registry.geometry(cfg.model, num_classes))
        model.compile(optimizer=optimizer, loss=[losses[name] for name in output_names(model)])

    def training_view(self, model, cfg: Config):
        head = self._head(cfg)
        return head.training_view(model, {layer.name.removeprefix("quant_"): layer for layer in model.layers})

    def training_batches(self, cfg: Config, splits: Splits, spec, model):
        """Ground-truth boxes -> the head's per-anchor targets, in the order of `model`'s outputs."""
        head = self._head(cfg)
        geometry = registry.geometry(cfg.model, len(splits.class_names))
        names = output_names(model)

        def to_targets(x, y):
            targets = self._targets(head, x, y, cfg, geometry)
            return x, tuple(targets[n] for n in names)

        train_ds = splits.batches(splits.train, spec, cfg.train.batch_size, training=True, augment=cfg.augment,
                                  seed=cfg.train.seed)
        val_ds = splits.batches(splits.val, spec, cfg.train.batch_size)
        return (train_ds.map(to_targets, num_parallel_calls=tf.data.AUTOTUNE),
                val_ds.map(to_targets, num_parallel_calls=tf.data.AUTOTUNE))

    def _targets(self, head, images, y: dict, cfg: Config, geometry: dict) -> dict:
        """A batch's ground truth -> the head's target per output name."""
        return head.targets(images, y["boxes"], y["classes"], cfg.detection, geometry)

    def trained_model(self, model):
        return model  # a detector's outputs are all exported (boxes and scores)

    def output_contract(self, cfg: Config) -> dict[str, str]:
        if cfg.convert.postprocess == "tflite_op":
            m = cfg.detection.max_detections
            return dict(zip(POSTPROCESS_OUTPUTS, (
                f"float [1, {m}, 4] (ymin, xmin, ymax, xmax) normalised to the model input",
                f"float [1, {m}] class index into `classes`", f"float [1, {m}] score, highest first",
                "float [1] how many of the rows are detections"), strict=True))
        return {BOXES: "float [1, N, 4] box encodings (ty, tx, th, tw) relative to `detection.anchors`; see "
                       "`detection.box_coding`",
                SCORES: "float [1, N, num_classes] a sigmoid score per anchor and class, in the order of `classes`"}

    def bundle_fields(self, cfg: Config, num_classes: int, splits: Splits | None = None) -> dict:
        """What a device needs to turn a detector's raw outputs into boxes, exactly as the evaluator
        does (tfpipe.runtime.detection.detect)."""
        d = cfg.detection
        return {"detection": {
            "box_coding": {"encodings": "ty tx th tw", "anchors": "cy cx h w, normalised to the model input",
                           "scales": list(SCALES), "decode": "cy = cy_a + ty / 10 * h_a; h = h_a * exp(th / 5) (x, "
                           "w alike); class-wise NMS on those corners, then the kept boxes clipped to 0..1 (as "
                           "TFLite_Detection_PostProcess)"},
            "score_threshold": d.score_threshold,
            "nms_iou": d.nms_iou,
            "max_detections": d.max_detections,
            # float32 values written in full, so a device and the evaluator decode with the very anchors
            # the post-processing op embeds (json round-trips them exactly)
            "anchors": np.asarray(registry.anchors(cfg.model, num_classes), np.float32).tolist(),
        }}

    def postprocess(self, cfg: Config, num_classes: int):
        """(anchors, detection settings) for the export signature when the detector exports the op."""
        if cfg.convert.postprocess != "tflite_op":
            return None
        return registry.anchors(cfg.model, num_classes), cfg.detection

    def scorer(self, contract: Contract, targets, gallery: int) -> Scorer:
        return DetectionScorer([ImageBoxes(b, c) for b, c in targets], contract, gallery)

    def plots(self, report: dict, plot_dir: Path) -> dict[str, Path]:
        by_model = {m["name"]: m["metrics"] for m in report["models"] if m.get("status", "ok") == "ok"}
        classes = report["dataset"]["classes"]
        return {"AP per class": plots.class_bars(by_model, classes, "per_class_ap", "map", "AP", plot_dir / "ap.png"),
                "precision-recall": plots.pr_curves(by_model, classes, plot_dir / "pr.png")}

    def gallery(self, report: dict, row: dict, images: dict[int, np.ndarray], drawn: dict, path: Path) -> Path:
        return plots.detection_gallery(report, row, images, drawn, path)


class DetectionScorer(Scorer):
    """COCO mAP of each model's detections, decoded and NMS'd as model.json says (`Contract.detections`,
    the device's code; the same for every model, the Keras one too); against the float model: how
    many boxes find a partner, their IoU and score difference."""

    def __init__(self, labels: list[ImageBoxes], contract: Contract, gallery: int):
        self.labels, self.contract, self.gallery = labels, contract, gallery
        self.num_classes = len(contract.classes)

    def detect(self, outputs: dict[str, np.ndarray]) -> list[ImageBoxes]:
        """Every image's detections, in model-input pixels."""
        count = len(next(iter(outputs.values())))
        return [ImageBoxes(*self.contract.detections({k: v[i] for k, v in outputs.items()})) for i in range(count)]

    def score(self, outputs: dict[str, np.ndarray], float_outputs: dict[str, np.ndarray] | None = None) -> dict:
        found = self.detect(outputs)
        coco = coco_metrics(self.labels, found, self.num_classes)
        counts = np.bincount(np.concatenate([g.classes for g in self.labels]).astype(int), minlength=self.num_classes)
        metrics = {"map": coco["AP"], "map50": coco["AP50"], "map75": coco["AP75"], "coco": {
            k: coco[k] for k in COCO_STATS}, "per_class_ap": coco["per_class_AP"], "per_class_count": counts.tolist(),
            "pr_curve_iou50": coco["pr_curve_iou50"], "detections": int(sum(len(f.boxes) for f in found))}
        if float_outputs is None:
            return {"metrics": metrics, "detections": found}
        reference = self.reference(float_outputs)
        float_found = reference["detections"]
        float_metrics = reference["metrics"]
        agreement = detection_agreement(float_found, found)
        per_image = np.array(agreement.pop("per_image"))
        return {
            "metrics": metrics,
            "detections": found,
            "delta_points": {"map": 100 * (coco["AP"] - float_metrics["map"]),
                             "map50": 100 * (coco["AP50"] - float_metrics["map50"])},
            "delta_per_class_points": [None if m is None or f is None else 100 * (m - f) for m, f in
                                       zip(coco["per_class_AP"], float_metrics["per_class_ap"], strict=True)],
            "agreement_boxes": agreement["matched_share_reference"],
            "box_agreement": agreement,
            # raw outputs, when the model has them (a model ending in the post-processing op has not)
            "outputs": {name: output_agreement(float_outputs[name], outputs[name]) for name in (SCORES, BOXES)
                        if name in outputs},
            "worst_disagreements": [{"index": int(i), "unmatched": float(per_image[i])}
                                    for i in np.argsort(-per_image, kind="stable")[:self.gallery]],
        }

    def gallery_items(self, outputs: dict[str, np.ndarray], scored: dict, indices: list[int]) -> dict:
        return {i: scored["detections"][i] for i in indices}

    def reference_items(self, float_outputs: dict[str, np.ndarray], indices: list[int]) -> dict[str, dict]:
        float_found = self.reference(float_outputs)["detections"]
        return {"truth": {i: self.labels[i] for i in indices}, "float": {i: float_found[i] for i in indices}}
