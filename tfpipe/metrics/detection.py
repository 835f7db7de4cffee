"""Detection metrics: COCO AP/AR through pycocotools, and Pascal VOC AP (07 11-point, 2010+ all-point).

Ground truth and predictions arrive per image in the sample contract's form (boxes xyxy in pixels,
class ids 0..C-1) and are converted to COCO form in memory; COCOeval itself is never re-implemented.
This is the only module that imports pycocotools.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np

COCO_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
KEYPOINT_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")  # COCOeval "keypoints"


@dataclass
class ImageBoxes:
    """One image's boxes: ground truth (scores None) or predictions (scores given)."""

    boxes: np.ndarray  # float [N, 4] x1 y1 x2 y2, pixels
    classes: np.ndarray  # int [N], 0..C-1
    scores: np.ndarray | None = None  # float [N], predictions only
    iscrowd: np.ndarray | None = None  # bool [N], ground truth only (COCO: matches are ignored)
    difficult: np.ndarray | None = None  # bool [N], ground truth only (VOC: matches are ignored)
    masks: list[dict] | None = None  # instance masks as COCO RLEs (`encode_masks`), one per box
    keypoints: np.ndarray | None = None  # float [N, K, 3]: x, y and visibility (truth) or score (predictions)


def encode_masks(masks: np.ndarray) -> list[dict]:
    """bool [N, H, W] -> N COCO RLEs (pycocotools), the compact form masks are kept and scored in."""
    from pycocotools import mask as mask_utils

    masks = np.asarray(masks, bool)
    if not len(masks):
        return []
    return mask_utils.encode(np.asfortranarray(np.transpose(masks, (1, 2, 0)).astype(np.uint8)))


def _xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)


def decode_mask(rle: dict) -> np.ndarray:
    """One COCO RLE -> bool [H, W]."""
    from pycocotools import mask as mask_utils

    return mask_utils.decode(rle).astype(bool)


def to_coco(ground_truth: list[ImageBoxes], predictions: list[ImageBoxes], num_classes: int) -> tuple[dict, list]:
    """(COCO ground-truth dataset dict, COCO result list). Image ids are 1-based list positions,
    category ids are class + 1 (COCO reserves 0). Masks (RLEs) and keypoints go along when given;
    with masks, an object's area is its mask's (COCO's, which OKS scales keypoint errors by)."""
    from pycocotools import mask as mask_utils

    images, annotations, results = [], [], []
    # segm evaluation reads each image's size; an RLE holds it ([height, width])
    sizes = [next((m["size"] for m in (gt.masks or []) + (pred.masks or []) if m), None)
             for gt, pred in zip(ground_truth, predictions, strict=False)]
    any_size = next((s for s in sizes if s), None)
    for index, gt in enumerate(ground_truth):
        image_id = index + 1
        images.append({"id": image_id})
        size = (sizes[index] if index < len(sizes) else None) or any_size
        if size:
            images[-1].update(height=int(size[0]), width=int(size[1]))
        crowd = gt.iscrowd if gt.iscrowd is not None else np.zeros(len(gt.classes), bool)
        for i, (box, cls, is_crowd) in enumerate(zip(_xywh(gt.boxes), gt.classes, crowd, strict=True)):
            annotation = {"id": len(annotations) + 1, "image_id": image_id, "category_id": int(cls) + 1,
                          "bbox": [float(v) for v in box], "area": float(box[2] * box[3]),
                          "iscrowd": int(bool(is_crowd))}
            if gt.masks is not None:
                annotation["segmentation"] = gt.masks[i]
                annotation["area"] = float(mask_utils.area(gt.masks[i]))
            if gt.keypoints is not None:
                points = np.asarray(gt.keypoints[i], np.float64)
                annotation["keypoints"] = points.reshape(-1).tolist()
                annotation["num_keypoints"] = int(np.count_nonzero(points[:, 2]))
            annotations.append(annotation)
    for index, pred in enumerate(predictions):
        for i, (box, cls, score) in enumerate(zip(_xywh(pred.boxes), pred.classes, pred.scores, strict=True)):
            result = {"image_id": index + 1, "category_id": int(cls) + 1, "bbox": [float(v) for v in box],
                      "score": float(score)}
            if pred.masks is not None:
                result["segmentation"] = pred.masks[i]
            if pred.keypoints is not None:
                result["keypoints"] = np.asarray(pred.keypoints[i], np.float64).reshape(-1).tolist()
            results.append(result)
    dataset = {"images": images, "annotations": annotations,
               "categories": [{"id": c + 1, "name": str(c)} for c in range(num_classes)]}
    return dataset, results


def coco_metrics(ground_truth: list[ImageBoxes], predictions: list[ImageBoxes], num_classes: int,
                 iou_type: str = "bbox", sigmas: tuple[float, ...] | None = None) -> dict:
    """COCO AP/AR as COCOeval computes them for `iou_type`: "bbox" (AP@[.5:.95], AP50, AP75,
    APs/m/l, AR1/10/100, ARs/m/l: COCO_STATS), "segm" (the same on masks) or "keypoints"
    (KEYPOINT_STATS, OKS with per-keypoint `sigmas`); -1 where a statistic has no ground truth, as
    COCOeval reports it. Also AP per class and the precision-recall curve at IoU (OKS) 0.5."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(ground_truth) != len(predictions):
        raise ValueError(f"{len(ground_truth)} ground-truth images but {len(predictions)} prediction images")
    dataset, results = to_coco(ground_truth, predictions, num_classes)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and the summary table
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        # What COCO.loadRes does, without its crash on an empty result list.
        detections = []
        for i, r in enumerate(results):
            area = r["bbox"][2] * r["bbox"][3]
            if iou_type == "segm":
                area = float(mask_utils.area(r["segmentation"]))
            detections.append({**r, "id": i + 1, "area": area, "iscrowd": 0})
        dt = COCO()
        dt.dataset = {"images": list(dataset["images"]), "categories": list(dataset["categories"]),
                      "annotations": detections}
        dt.createIndex()
        evaluator = COCOeval(gt, dt, iou_type)
        if iou_type == "keypoints":
            evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    names = KEYPOINT_STATS if iou_type == "keypoints" else COCO_STATS
    metrics = {name: float(value) for name, value in zip(names, evaluator.stats, strict=True)}
    # precision[iou threshold, recall threshold, class, area range, max dets]; -1 = class has no ground truth.
    # Area "all" (0) and the most detections (last), as AP itself uses.
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    per_class = [precision[:, :, k] for k in range(num_classes)]
    metrics["per_class_AP"] = [float(p[p > -1].mean()) if np.any(p > -1) else None for p in per_class]
    metrics["pr_curve_iou50"] = {"recall": [float(r) for r in evaluator.params.recThrs],
                                 "precision": [None if np.all(p[0] < 0) else [float(v) for v in p[0]]
                                               for p in per_class]}
    return metrics


# --- Pascal VOC -----------------------------------------------------------------------------------


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a [N,4] with every box in b [M,4], xyxy in continuous pixel coordinates
    (no VOC-devkit "+1": tfpipe boxes are floats, not inclusive integer pixel indices)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def voc_ap(recall: np.ndarray, precision: np.ndarray, eleven_point: bool) -> float:
    """AP from a precision/recall curve (detections sorted by falling score).

    VOC2007: mean over recall thresholds 0, 0.1, ..., 1 of the best precision at recall >= t.
    VOC2010+: area under the curve whose precision is made monotone (the best precision at any
    higher recall), summed where recall changes.
    """
    recall, precision = np.asarray(recall, np.float64), np.asarray(precision, np.float64)
    if eleven_point:
        return float(np.mean([precision[recall >= t].max(initial=0.0) for t in np.linspace(0, 1, 11)]))
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    changes = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[changes + 1] - r[changes]) * p[changes + 1]))


def voc_metrics(ground_truth: list[ImageBoxes], predictions: list[ImageBoxes], num_classes: int,
                iou_threshold: float = 0.5, eleven_point: bool = False) -> dict:
    """Per-class VOC AP and their mean over classes that have (non-difficult) ground truth.

    Per class, detections are taken in falling score order; each is a true positive if its best
    IoU with a ground-truth box of its image is >= the threshold and that box is not yet taken.
    A detection whose best match is a `difficult` box counts as neither; difficult boxes are not
    in the recall denominator.
    """
    per_class = []
    for cls in range(num_classes):
        entries, npos = [], 0
        for index, (gt, pred) in enumerate(zip(ground_truth, predictions, strict=True)):
            difficult = gt.difficult if gt.difficult is not None else np.zeros(len(gt.classes), bool)
            npos += int(np.sum((gt.classes == cls) & ~difficult))
            mine = np.nonzero(pred.classes == cls)[0]
            entries += [(float(pred.scores[i]), index, pred.boxes[i]) for i in mine]
        if npos == 0:
            per_class.append(None)
            continue
        entries.sort(key=lambda e: -e[0])
        taken = [np.zeros(len(gt.classes), bool) for gt in ground_truth]
        tp, fp = [], []
        for _, index, box in entries:
            gt = ground_truth[index]
            candidates = np.nonzero(gt.classes == cls)[0]
            difficult = gt.difficult if gt.difficult is not None else np.zeros(len(gt.classes), bool)
            if len(candidates):
                ious = iou_matrix(box, gt.boxes[candidates])[0]
                best = candidates[int(np.argmax(ious))]
                if ious.max() >= iou_threshold:
                    if difficult[best]:
                        continue  # neither true nor false positive
                    if not taken[index][best]:
                        taken[index][best] = True
                        tp.append(1)
                        fp.append(0)
                        continue
            tp.append(0)
            fp.append(1)
        tp_cum, fp_cum = np.cumsum(tp), np.cumsum(fp)
        recall = tp_cum / npos
        precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
        per_class.append(voc_ap(recall, precision, eleven_point) if len(tp) else 0.0)
    valid = [ap for ap in per_class if ap is not None]
    return {"mAP": float(np.mean(valid)) if valid else float("nan"), "per_class_AP": per_class,
            "iou_threshold": iou_threshold, "variant": "VOC2007 11-point" if eleven_point else "VOC2010 all-point"}


def match_detections(reference: ImageBoxes, other: ImageBoxes, iou_threshold: float = 0.5) -> list[tuple[int, int]]:
    """Greedy one-to-one matches (reference index, other index) of same-class boxes, reference boxes
    in falling score order each taking the unmatched box of highest IoU >= the threshold."""
    if not len(reference.boxes) or not len(other.boxes):
        return []
    ious = iou_matrix(np.asarray(reference.boxes, np.float64), np.asarray(other.boxes, np.float64))
    ious[np.asarray(reference.classes)[:, None] != np.asarray(other.classes)[None, :]] = -1.0
    taken = np.zeros(len(other.boxes), bool)
    matches = []
    for i in np.argsort(-np.asarray(reference.scores), kind="stable"):
        candidates = np.where(taken, -1.0, ious[i])
        j = int(candidates.argmax())
        if candidates[j] >= iou_threshold:
            taken[j] = True
            matches.append((int(i), j))
    return matches


def detection_agreement(reference: list[ImageBoxes], other: list[ImageBoxes], iou_threshold: float = 0.5) -> dict:
    """How closely one model's detections follow the float model's, image by image: mean IoU and
    score difference of matched boxes, and the share of boxes on each side that found a partner.
    `per_image` (1 - matched IoU sum / larger box count) ranks the gallery of worst disagreements."""
    if len(reference) != len(other):
        raise ValueError(f"{len(reference)} reference images but {len(other)} images to compare")
    ious, score_diffs, per_image = [], [], []
    n_reference = n_other = 0
    for ref, oth in zip(reference, other, strict=True):
        matches = match_detections(ref, oth, iou_threshold)
        matched_iou = [float(iou_matrix(ref.boxes[i : i + 1], oth.boxes[j : j + 1])[0, 0]) for i, j in matches]
        ious += matched_iou
        score_diffs += [float(oth.scores[j] - ref.scores[i]) for i, j in matches]
        n_reference, n_other = n_reference + len(ref.boxes), n_other + len(oth.boxes)
        larger = max(len(ref.boxes), len(oth.boxes))
        per_image.append(1.0 - sum(matched_iou) / larger if larger else 0.0)
    diffs = np.abs(score_diffs)
    return {
        "iou_threshold": iou_threshold,
        "matched": len(ious),
        "matched_share_reference": len(ious) / n_reference if n_reference else 1.0,
        "matched_share_other": len(ious) / n_other if n_other else 1.0,
        "mean_iou": float(np.mean(ious)) if ious else None,
        "mean_abs_score_diff": float(diffs.mean()) if len(diffs) else None,
        "max_abs_score_diff": float(diffs.max()) if len(diffs) else None,
        "per_image": per_image,
    }

