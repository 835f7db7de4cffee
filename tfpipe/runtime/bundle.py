"""A converted model's bundle (export/: model.json, the .tflite files, labels.txt) on a device:
one image in, the task's predictions out, with no TensorFlow.

`Bundle.input_of` applies model.json's preprocess (tfpipe.runtime.preprocess, the twin of the
training pipeline's); tfpipe.runtime.model runs the .tflite (quantizing the input and dequantizing
the outputs with their own scales, as the evaluator's workers do); `Bundle.decode` reads the
outputs as the evaluator does (both through `Contract`, model.json's shared part): top-k
probabilities; detections from TFLite_Detection_PostProcess's outputs or, for a raw model,
tfpipe.runtime.detection's decoding and class-wise NMS on the bundle's anchors; a class map from
`class_map` or the argmax of the probabilities; instances as detections, each with the mask and
keypoints of its row (tfpipe.runtime.instance). Boxes and maps are given back in the original
image's pixels (the letterbox undone).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfpipe.errors import TfpipeError
from tfpipe.runtime import detection, instance
from tfpipe.runtime.contract import (
    BOXES,
    CLASS_MAP,
    KEYPOINTS,
    MASKS,
    NUM_DETECTIONS,
    PROBABILITIES,
    SCORES,
    PreprocessSpec,
)
from tfpipe.runtime.preprocess import letterbox_geometry, preprocess


@dataclass
class TopClasses:
    """A classifier's answer for one image: the `top` (class, score) pairs, best first."""

    top: list[tuple[str, float]]

    def lines(self, classes: list[str]) -> list[str]:
        return [", ".join(f"{name} {score:.4f}" for name, score in self.top)]

    def to_json(self) -> dict:
        return {"top": [[c, s] for c, s in self.top]}


@dataclass
class Detections:
    """A detector's answer: `boxes` [N, 4] x1 y1 x2 y2 in the image's pixels, `classes`, `scores`."""

    boxes: np.ndarray
    classes: list[str]
    scores: np.ndarray

    def lines(self, classes: list[str]) -> list[str]:
        lines = [f"{len(self.classes)} detection(s)"]
        for box, name, score in zip(self.boxes, self.classes, self.scores, strict=True):
            lines.append(f"  {name} {score:.4f} at x1={box[0]:.1f} y1={box[1]:.1f} x2={box[2]:.1f} y2={box[3]:.1f}")
        return lines

    def to_json(self) -> dict:
        return {"boxes": np.round(self.boxes, 6).tolist(), "classes": self.classes,
                "scores": np.asarray(self.scores, np.float64).round(6).tolist()}


@dataclass
class ClassMap:
    """A segmenter's answer: the class index per pixel of the image, `class_map` [h, w]."""

    class_map: np.ndarray

    def lines(self, classes: list[str]) -> list[str]:
        counts = np.bincount(self.class_map.reshape(-1), minlength=len(classes))
        share = counts / max(1, self.class_map.size)
        return [", ".join(f"{classes[k]} {100 * share[k]:.1f}%" for k in np.argsort(-counts, kind="stable")
                          if counts[k])]

    def to_json(self) -> dict:
        return {"class_map": self.class_map.astype(np.int32)}


@dataclass
class Instances(Detections):
    """An instance segmenter's answer: the detections, each one's mask `masks` bool [N, h, w] in the
    image's pixels and, when the model has them, `keypoints` [N, K, 3] (x, y in the image's pixels,
    score), named by `keypoint_names`."""

    masks: np.ndarray = None
    keypoints: np.ndarray | None = None
    keypoint_names: tuple[str, ...] = ()

    def lines(self, classes: list[str]) -> list[str]:
        lines = [f"{len(self.classes)} instance(s)"]
        for i, (box, name, score) in enumerate(zip(self.boxes, self.classes, self.scores, strict=True)):
            lines.append(f"  {name} {score:.4f} at x1={box[0]:.1f} y1={box[1]:.1f} x2={box[2]:.1f} y2={box[3]:.1f}, "
                         f"mask {int(self.masks[i].sum())} px")
            if self.keypoints is not None:
                lines.append("    " + ", ".join(f"{k} ({x:.1f}, {y:.1f})" for k, (x, y, _) in
                                                zip(self.keypoint_names, self.keypoints[i], strict=True)))
        return lines

    def to_json(self) -> dict:
        out = {**super().to_json(), "mask_areas": [int(m.sum()) for m in self.masks],
               "masks": np.asarray(self.masks, np.uint8)}  # [N, h, w]: what golden vectors hold a device to
        if self.keypoints is not None:
            out["keypoints"] = np.round(np.asarray(self.keypoints, np.float64), 6).tolist()
        return out


Prediction = TopClasses | Detections | ClassMap | Instances


@dataclass(frozen=True)
class DetectionDecoding:
    """model.json's `detection`: how a raw detector's outputs become boxes (runtime.detection.detect)."""

    anchors: np.ndarray  # [N, 4] (cy, cx, h, w), normalised, in the order of the outputs
    scales: tuple[float, ...]  # the box coding's (y, x, h, w) scales
    score_threshold: float
    nms_iou: float
    max_detections: int

    @classmethod
    def from_json(cls, d: dict) -> DetectionDecoding:
        """ValueError naming the field that is missing or malformed."""
        try:
            anchors = np.asarray(d["anchors"], np.float32)
            scales = tuple(float(v) for v in d["box_coding"]["scales"])
            decoding = cls(anchors, scales, float(d["score_threshold"]), float(d["nms_iou"]),
                           int(d["max_detections"]))
        except KeyError as e:
            raise ValueError(f"no {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise ValueError(f"malformed ({e})") from None
        if anchors.ndim != 2 or anchors.shape[1] != 4 or len(scales) != 4:
            raise ValueError(f"anchors must be [N, 4] and box_coding.scales 4 numbers (got anchors "
                             f"{list(anchors.shape)}, {len(scales)} scales)")
        return decoding


class Contract:
    """What a bundle's model.json says of all its models: the task, the classes, the preprocessing
    and the task's decoding (a detector's anchors, box coding and NMS settings). The evaluator
    decodes every model (the Keras one too) through this, and a device through `Bundle`, so parity
    verifies what the device runs."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = path = self.folder / "model.json"
        try:
            self.meta = json.loads(path.read_text())
        except FileNotFoundError:
            raise TfpipeError(f"{path}: no such file", "point at a run's export/ folder (python -m tfpipe.convert "
                                                       "writes model.json there)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TfpipeError(f"{path}: not valid JSON ({e})", "convert the run again to rewrite it") from None
        fields = ("task", "classes", "preprocess", "models")
        missing = [k for k in fields if k not in self.meta] if isinstance(self.meta, dict) else list(fields)
        if missing:
            raise TfpipeError(f"{path}: not a tfpipe bundle (missing {', '.join(missing)})",
                              "convert the run again to rewrite it")
        self.task = self.meta["task"]
        if self.task not in DECODERS:
            raise TfpipeError(f"{path}: task {self.task!r} is not one this runtime decodes",
                              f"known: {', '.join(DECODERS)}; update tfpipe on the device")
        self.classes = list(self.meta["classes"])
        try:
            self.spec = PreprocessSpec.from_json(self.meta["preprocess"])
        except (TypeError, ValueError) as e:
            raise TfpipeError(f"{path}: preprocess: {e}", "convert the run again to rewrite it") from None
        self._decoding: DetectionDecoding | None = None
        instance_fields = self.meta.get("instance", {}) if isinstance(self.meta.get("instance", {}), dict) else {}
        self.mask_threshold = float(instance_fields.get("mask_threshold", instance.MASK_THRESHOLD))
        self.keypoint_names = tuple(instance_fields.get("keypoints", ()))

    @property
    def detection(self) -> DetectionDecoding:
        if self._decoding is None:
            try:
                self._decoding = DetectionDecoding.from_json(self.meta.get("detection", {}))
            except ValueError as e:
                raise TfpipeError(f"{self.path}: detection: {e}", "convert the run again to rewrite it") from None
        return self._decoding

    def detections(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One image's detector outputs (no batch axis) -> (boxes x1 y1 x2 y2 in model-input pixels,
        classes, scores): the post-processing op's own detections, or a raw model's decoded by
        model.json's anchors and settings."""
        size = (self.spec.height, self.spec.width)
        if NUM_DETECTIONS in outputs:
            return detection.finished(outputs, size)
        d = self.detection
        return detection.detect(outputs[BOXES], outputs[SCORES], d.anchors, size, d.score_threshold, d.nms_iou,
                                d.max_detections, d.scales)


    def instances(self, outputs: dict[str, np.ndarray], image_hw: tuple[int, int] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """One image's instance-segmenter outputs (no batch axis) -> (boxes x1 y1 x2 y2, classes,
        scores, masks bool [N, h, w], keypoints [N, K, 3] or None): the detections as `detections`
        decodes them, each with the mask and keypoints of its row (tfpipe.runtime.instance), in the
        model input's pixels, or the original image's (`image_hw`: the letterbox undone; masks
        pasted at the image's resolution)."""
        d = self.detection
        size = (self.spec.height, self.spec.width)
        boxes, classes, scores, rows = detection.detect_rows(outputs[BOXES], outputs[SCORES], d.anchors, size,
                                                             d.score_threshold, d.nms_iou, d.max_detections,
                                                             d.scales)
        if image_hw is not None:
            boxes = self._to_image(boxes, image_hw).astype(np.float32)
        height, width = image_hw or size
        soft = np.asarray(outputs[MASKS])
        masks = np.stack([instance.paste_mask(soft[r], b, height, width, self.mask_threshold)
                          for r, b in zip(rows, boxes, strict=True)]) if len(rows) else np.zeros((0, height, width),
                                                                                                  bool)
        points = None
        if KEYPOINTS in outputs:
            maps = np.asarray(outputs[KEYPOINTS])
            points = np.stack([instance.keypoints(maps[r], b) for r, b in zip(rows, boxes, strict=True)]
                              ).reshape(len(rows), maps.shape[-1], 3) if len(rows) else np.zeros((0, maps.shape[-1], 3),
                                                                                                 np.float32)
        return boxes, classes, scores, masks, points


class Bundle(Contract):
    """A bundle's contract and one of its models (`model`: its label in model.json's `models`)."""

    def __init__(self, folder: str | Path, model: str = "int8"):
        super().__init__(folder)
        models = self.meta["models"]
        if model not in models:
            raise TfpipeError(f"{self.path}: no {model!r} model", f"this bundle has: {', '.join(models) or 'none'}")
        self.entry = models[model]
        self.model_file = self.folder / self.entry["file"]

    def input_of(self, pixels: np.ndarray) -> np.ndarray:
        """The model input [1, H, W, C] float32 of one image (pixels 0..255)."""
        return preprocess(pixels, self.spec)[None]

    def decode(self, outputs: dict[str, np.ndarray], image_hw: tuple[int, int], top_k: int = 3,
               min_score: float = 0.0) -> Prediction:
        """Batch-1 float outputs -> the image's prediction (see the module docstring); detections
        scoring under `min_score` are left out."""
        return DECODERS[self.task](self, outputs, image_hw, top_k, min_score)

    def _top_classes(self, outputs, image_hw, top_k: int, min_score: float) -> TopClasses:
        p = outputs[PROBABILITIES][0]
        order = np.argsort(-p, kind="stable")[:top_k]
        return TopClasses([(self.classes[i], float(p[i])) for i in order])

    def _detections(self, outputs, image_hw, top_k: int, min_score: float) -> Detections:
        boxes, classes, scores = self.detections({k: v[0] for k, v in outputs.items()})
        keep = np.asarray(scores) >= min_score
        return Detections(self._to_image(np.asarray(boxes)[keep], image_hw),
                          [self.classes[int(c)] for c in np.asarray(classes)[keep]], np.asarray(scores)[keep])

    def _instances(self, outputs, image_hw, top_k: int, min_score: float) -> Instances:
        boxes, classes, scores, masks, points = self.instances({k: v[0] for k, v in outputs.items()}, image_hw)
        keep = np.asarray(scores) >= min_score
        return Instances(boxes[keep], [self.classes[int(c)] for c in classes[keep]], scores[keep], masks[keep],
                         None if points is None else points[keep], self.keypoint_names)

    def _class_map(self, outputs, image_hw, top_k: int, min_score: float) -> ClassMap:
        class_map = outputs[CLASS_MAP][0] if CLASS_MAP in outputs else np.argmax(outputs[PROBABILITIES][0], -1)
        return ClassMap(self._map_to_image(np.asarray(class_map).astype(np.int32), image_hw))

    def _geometry(self, image_hw):
        h, w = image_hw
        height, width = self.spec.height, self.spec.width
        if self.spec.resize == "stretch" or (h, w) == (height, width):
            return height, width, 0, 0
        return letterbox_geometry(h, w, height, width)

    def _to_image(self, boxes: np.ndarray, image_hw) -> np.ndarray:
        """Boxes x1 y1 x2 y2 in model-input pixels -> the original image's pixels."""
        new_h, new_w, top, left = self._geometry(image_hw)
        h, w = image_hw
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scale = np.array([w / new_w, h / new_h, w / new_w, h / new_h])
        return (boxes - np.array([left, top, left, top])) * scale

    def _map_to_image(self, class_map: np.ndarray, image_hw) -> np.ndarray:
        """A class map at the model input -> the image's size (nearest neighbour, letterbox cropped)."""
        new_h, new_w, top, left = self._geometry(image_hw)
        inner = class_map[top:top + new_h, left:left + new_w]
        h, w = image_hw
        rows = np.minimum(((np.arange(h) + 0.5) * new_h / h).astype(int), new_h - 1)
        cols = np.minimum(((np.arange(w) + 0.5) * new_w / w).astype(int), new_w - 1)
        return inner[rows][:, cols]


# model.json's task -> how its outputs become one image's answer
DECODERS = {"classification": Bundle._top_classes, "detection": Bundle._detections,
            "segmentation": Bundle._class_map, "instance_segmentation": Bundle._instances}


def describe(prediction: Prediction, classes: list[str]) -> list[str]:
    """The lines a runner prints for one prediction."""
    return prediction.lines(classes)
