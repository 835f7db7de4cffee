"""Instance segmentation (Mask R-CNN): detections, each with its own mask and, optionally, keypoints.

Raw outputs per RoI (`box_encodings`, `class_scores`, `instance_masks` [N, 28, 28] and
`keypoint_heatmaps` [N, 28, 28, K]) are decoded on the device and by the evaluator alike through
tfpipe.runtime (class-wise NMS, then each kept row's mask pasted into its box and its keypoints
taken at the heatmaps' arg-max). TFLite_Detection_PostProcess is not used: it gives no row
indices, so a mask could not follow its box. The gate is COCO mask AP (pycocotools, "segm"); box
AP and keypoint AP (OKS with the dataset's sigmas) are reported beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe import plots
from tfpipe.config import Config
from tfpipe.data.formats.keypoints import GARMENT_KEYPOINTS, GARMENT_SIGMAS
from tfpipe.data.pipeline import Splits
from tfpipe.errors import TfpipeError
from tfpipe.metrics.classification import output_agreement
from tfpipe.metrics.detection import ImageBoxes, coco_metrics, detection_agreement, encode_masks
from tfpipe.runtime import instance
from tfpipe.runtime.bundle import Contract
from tfpipe.runtime.contract import BOXES, KEYPOINTS, MASKS, SCORES
from tfpipe.tasks.base import Gate, ReportView, Scorer
from tfpipe.tasks.detection import Detection

# COCO's OKS sigmas by keypoint set: the garments' (tfpipe.data.formats.keypoints); a dataset of
# your own with other keypoints is scored with the mean of COCO's 17 person sigmas for each (0.067)
KNOWN_SIGMAS = {GARMENT_KEYPOINTS: GARMENT_SIGMAS}
DEFAULT_SIGMA = 0.067
FOREGROUND_SCORE = 0.5  # agreement and the gallery compare the instances scoring at least this


def keypoint_sigmas(names: tuple[str, ...]) -> tuple[float, ...]:
    return KNOWN_SIGMAS.get(tuple(names), (DEFAULT_SIGMA,) * len(names))


class InstanceSegmentation(Detection):
    name = "instance_segmentation"
    targets = "instances"
    gate = Gate("mask_map", "mask AP")
    report = ReportView(
        metrics=(("box AP", "map"), ("mask AP", "mask_map"), ("mask AP75", "mask_map75"), ("kp AP", "keypoint_map")),
        agreement="agreement_masks", per_class=("per_class_mask_ap", "instances", "mask AP"),
        note="Δ columns are percentage points against the float Keras model; box, mask and keypoint AP are COCO's "
             "AP@[.5:.95] (pycocotools: bbox, segm, keypoints with OKS), mask AP75 the mask AP at IoU 0.75; every "
             "model is decoded as the bundle's model.json says (class-wise NMS, each kept row's 28x28 mask "
             "pasted into its box at threshold 0.5, keypoints at the heatmaps' arg-max: tfpipe.runtime.instance); "
             "`agree` is the mean IoU of the union of the instances scoring >= 0.5 with the float model's, per "
             "image; size× and lat× are relative to model_fp32.tflite; latency is batch 1 after warm-up.")

    def check(self, cfg: Config) -> None:
        """Augmentations that would move masks inexactly are refused (flip and colour are exact)."""
        super().check(cfg)
        a = cfg.augment
        for key in ("jitter_scale", "mosaic", "mixup", "cutmix", "translate"):
            if getattr(a, key):
                raise TfpipeError(f"augment.{key}: {getattr(a, key)} is not available for instance segmentation",
                                  "use augment.horizontal_flip and augment.color_jitter (they move masks and "
                                  "keypoints exactly), or remove it")

    def load_splits(self, cfg: Config) -> Splits:
        splits = super().load_splits(cfg)
        wanted = int(cfg.model.args.get("keypoints", 0))
        if wanted and len(splits.keypoint_names) != wanted:
            have = f"{len(splits.keypoint_names)} ({', '.join(splits.keypoint_names)})" if splits.keypoint_names \
                else "none"
            raise TfpipeError(f"model.args.keypoints: {wanted}, the dataset's objects have {have}",
                              f"set model.args.keypoints: {len(splits.keypoint_names)}")
        return splits

    def _targets(self, head, images, y: dict, cfg: Config, geometry: dict) -> dict:
        """Ground truths -> the RPN's per-anchor targets and the heads' (boxes, masks, keypoints)."""
        return head.instance_targets(images, y["boxes"], y["classes"], y["masks"], y["keypoints"], geometry)

    def output_contract(self, cfg: Config) -> dict[str, str]:
        out = {BOXES: "float [1, N, 4] box encodings (ty, tx, th, tw) relative to `detection.anchors`; see "
                      "`detection.box_coding`",
               SCORES: "float [1, N, num_classes] a score per row and class, in the order of `classes`",
               MASKS: "float [1, N, 28, 28] each row's soft mask over its decoded box; see `instance.masks`"}
        if int(cfg.model.args.get("keypoints", 0)):
            out[KEYPOINTS] = ("float [1, N, 28, 28, K] each row's keypoint heatmap logits over its decoded box; see "
                              "`instance.keypoints`")
        return out

    def bundle_fields(self, cfg: Config, num_classes: int, splits: Splits | None = None) -> dict:
        fields = super().bundle_fields(cfg, num_classes)
        names = splits.keypoint_names if splits is not None and int(cfg.model.args.get("keypoints", 0)) else ()
        fields["instance"] = {
            "masks": "row r of instance_masks belongs to the detection NMS keeps from row r; every image pixel "
                     "whose centre lies in the detection's box takes the bilinear sample of the 28x28 grid "
                     "at that centre (cells at (i + 0.5) / 28 of the box, clamped to the grid), and is the "
                     "instance's where it is >= mask_threshold",
            "mask_threshold": instance.MASK_THRESHOLD,
            "keypoints": list(names),
            "keypoint_sigmas": list(keypoint_sigmas(names)),
            "keypoint_decoding": "keypoint k sits at the centre of the arg-max cell of map k (ties: the first "
                                 "cell in row-major order) over the detection's box; its score is the softmax "
                                 "probability there",
        }
        return fields

    def postprocess(self, cfg: Config, num_classes: int):
        return None  # raw outputs always (see the module docstring)

    def scorer(self, contract: Contract, targets, gallery: int) -> Scorer:
        labels = [ImageBoxes(b, c, masks=encode_masks(m), keypoints=k if k.shape[1] else None)
                  for b, c, m, k in targets]
        return InstanceScorer(labels, contract, gallery)

    def plots(self, report: dict, plot_dir: Path) -> dict[str, Path]:
        by_model = {m["name"]: m["metrics"] for m in report["models"] if m.get("status", "ok") == "ok"}
        classes = report["dataset"]["classes"]
        return {"mask AP per class": plots.class_bars(by_model, classes, "per_class_mask_ap", "mask_map", "mask AP",
                                                      plot_dir / "mask_ap.png"),
                "box AP per class": plots.class_bars(by_model, classes, "per_class_ap", "map", "box AP",
                                                     plot_dir / "ap.png")}

    def gallery(self, report: dict, row: dict, images: dict[int, np.ndarray], drawn: dict, path: Path) -> Path:
        return plots.detection_gallery(report, row, images, drawn, path, disagreement="mask pixels differ")


class InstanceScorer(Scorer):
    """COCO box, mask and keypoint AP of each model's instances, decoded as model.json says
    (`Contract.instances`, the device's code); against the float model: box agreement and the IoU
    of the images' instance foregrounds (instances scoring >= FOREGROUND_SCORE)."""

    private = ("detections", "foregrounds")

    def __init__(self, labels: list[ImageBoxes], contract: Contract, gallery: int):
        self.labels, self.contract, self.gallery = labels, contract, gallery
        self.num_classes = len(contract.classes)
        self.sigmas = keypoint_sigmas(contract.keypoint_names)

    def decode(self, outputs: dict[str, np.ndarray]) -> tuple[list[ImageBoxes], list[np.ndarray]]:
        """Every image's instances (masks as RLEs), and its foreground: the union of the masks of the
        instances scoring >= FOREGROUND_SCORE, bool [H, W]."""
        count = len(next(iter(outputs.values())))
        found, foregrounds = [], []
        for i in range(count):
            boxes, classes, scores, masks, points = self.contract.instances({k: v[i] for k, v in outputs.items()})
            found.append(ImageBoxes(boxes, classes, scores, masks=encode_masks(masks), keypoints=points))
            foregrounds.append(np.any(masks[scores >= FOREGROUND_SCORE], axis=0) if len(masks)
                               else np.zeros((self.contract.spec.height, self.contract.spec.width), bool))
        return found, foregrounds

    def score(self, outputs: dict[str, np.ndarray], float_outputs: dict[str, np.ndarray] | None = None) -> dict:
        found, foregrounds = self.decode(outputs)
        box = coco_metrics(self.labels, found, self.num_classes, "bbox")
        segm = coco_metrics(self.labels, found, self.num_classes, "segm")
        metrics = {"map": box["AP"], "map50": box["AP50"], "map75": box["AP75"], "per_class_ap": box["per_class_AP"],
                   "mask_map": segm["AP"], "mask_map50": segm["AP50"], "mask_map75": segm["AP75"],
                   "per_class_mask_ap": segm["per_class_AP"], "pr_curve_iou50": segm["pr_curve_iou50"],
                   "keypoint_map": None, "detections": int(sum(len(f.boxes) for f in found)),
                   "per_class_count": np.bincount(np.concatenate([g.classes for g in self.labels]).astype(int),
                                                  minlength=self.num_classes).tolist()}
        if self.labels and self.labels[0].keypoints is not None and KEYPOINTS in outputs:
            points = coco_metrics(self.labels, found, self.num_classes, "keypoints", self.sigmas)
            metrics.update(keypoint_map=points["AP"], keypoint_map50=points["AP50"], keypoint_map75=points["AP75"])
        if float_outputs is None:
            return {"metrics": metrics, "detections": found, "foregrounds": foregrounds}
        reference = self.reference(float_outputs)
        float_metrics = reference["metrics"]
        agreement = detection_agreement(reference["detections"], found)
        agreement.pop("per_image")
        ious = np.array([_iou(a, b) for a, b in zip(reference["foregrounds"], foregrounds, strict=True)])
        delta = {key: 100 * (metrics[key] - float_metrics[key]) for key in ("map", "map50", "mask_map", "mask_map75")}
        if metrics["keypoint_map"] is not None and float_metrics["keypoint_map"] is not None:
            delta["keypoint_map"] = 100 * (metrics["keypoint_map"] - float_metrics["keypoint_map"])
        return {
            "metrics": metrics,
            "detections": found,
            "foregrounds": foregrounds,
            "delta_points": delta,
            "delta_per_class_points": [None if m is None or f is None else 100 * (m - f) for m, f in
                                       zip(metrics["per_class_mask_ap"], float_metrics["per_class_mask_ap"],
                                           strict=True)],
            "agreement_masks": float(ious.mean()) if len(ious) else 1.0,
            "agreement_boxes": agreement["matched_share_reference"],
            "box_agreement": agreement,
            "outputs": {name: output_agreement(float_outputs[name], outputs[name]) for name in
                        (SCORES, BOXES, MASKS, KEYPOINTS) if name in outputs and name in float_outputs},
            "worst_disagreements": [{"index": int(i), "unmatched": float(1 - ious[i])}
                                    for i in np.argsort(ious, kind="stable")[:self.gallery]],
        }

    def gallery_items(self, outputs: dict[str, np.ndarray], scored: dict, indices: list[int]) -> dict:
        return {i: scored["detections"][i] for i in indices}

    def reference_items(self, float_outputs: dict[str, np.ndarray], indices: list[int]) -> dict[str, dict]:
        float_found = self.reference(float_outputs)["detections"]
        return {"truth": {i: self.labels[i] for i in indices}, "float": {i: float_found[i] for i in indices}}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union
