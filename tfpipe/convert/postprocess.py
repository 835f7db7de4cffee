"""TFLite_Detection_PostProcess appended to a detector (convert.postprocess: tflite_op).

TensorFlow has no such op: a tf.function annotated with `experimental_implements` names it and its
attributes, and the TFLite converter replaces the whole function by the custom op (the body only
gives the outputs their types). The op decodes the box encodings with the anchors (the scales are
those of tfpipe.runtime.detection) and runs class-wise NMS (`use_regular_nms`, the evaluator's
NMS), so the .tflite outputs finished detections:

  detection_boxes [1, M, 4] (ymin, xmin, ymax, xmax) normalised, detection_classes [1, M] (float
  class ids), detection_scores [1, M], num_detections [1]; M = detection.max_detections.

The op runs in float on the CPU after a DEQUANTIZE (ai-edge-litert and tflite_runtime register it
themselves); the Edge TPU maps everything before it.
"""

from __future__ import annotations

import numpy as np

from tfpipe.backend import tf
from tfpipe.config import DetectionConfig
from tfpipe.runtime.contract import BOXES, POSTPROCESS_OUTPUTS, SCORES
from tfpipe.runtime.detection import SCALES

OP = "TFLite_Detection_PostProcess"


def _attributes(cfg: DetectionConfig, num_classes: int) -> str:
    values = {"max_detections": ("i", cfg.max_detections), "max_classes_per_detection": ("i", 1),
              "detections_per_class": ("i", cfg.max_detections), "use_regular_nms": ("b", "true"),
              "nms_score_threshold": ("f", cfg.score_threshold), "nms_iou_threshold": ("f", cfg.nms_iou),
              "num_classes": ("i", num_classes), "y_scale": ("f", SCALES[0]), "x_scale": ("f", SCALES[1]),
              "h_scale": ("f", SCALES[2]), "w_scale": ("f", SCALES[3])}
    attrs = " ".join(f'attr {{ key: "{key}" value {{ {kind}: {value} }} }}' for key, (kind, value) in values.items())
    return f'name: "{OP}" {attrs}'


def postprocess_op(cfg: DetectionConfig, num_classes: int):
    """A function (box_encodings [1, N, 4], class_scores [1, N, C], anchors [N, 4]) -> the four
    outputs, that the converter turns into the custom op."""

    @tf.function(experimental_implements=_attributes(cfg, num_classes))
    def detection_postprocess(box_encodings, class_scores, anchors):
        # Never run: the converter swaps the function for the op. Shapes only.
        m = cfg.max_detections
        return (tf.zeros([1, m, 4]), tf.zeros([1, m]), tf.zeros([1, m]), tf.zeros([1]))

    return detection_postprocess


def with_postprocess(model, anchors: np.ndarray, cfg: DetectionConfig, names: list[str]):
    """The serving body for a detector: its raw outputs (named `names`) -> the op's four outputs."""
    op = postprocess_op(cfg, model.outputs[1].shape[-1])
    anchor_tensor = tf.constant(anchors, tf.float32)

    def serve(x):
        raw = dict(zip(names, model(x, training=False), strict=True))
        return dict(zip(POSTPROCESS_OUTPUTS, op(raw[BOXES], raw[SCORES], anchor_tensor), strict=True))

    return serve


def postprocess_last(data: bytes) -> bytes:
    """The model with the operators that only feed the post-processing op (the DEQUANTIZEs the
    converter puts in front of it, right after each producer) moved to just before it.

    The Edge TPU compiler maps operators in execution order up to the first one it cannot run and
    leaves everything after on the CPU; with a DEQUANTIZE between the box and the class heads, half
    the heads would fall to the CPU. Moving an operator later keeps a valid order: its inputs are
    computed earlier still, and its only consumer is the last operator."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    graph = model.subgraphs[0]

    def is_postprocess(op) -> bool:
        return model.operatorCodes[op.opcodeIndex].customCode in (OP, OP.encode())

    post = [op for op in graph.operators if is_postprocess(op)]
    if not post:
        return data
    readers: dict[int, list] = {}
    for op in graph.operators:
        for tensor in op.inputs:
            readers.setdefault(int(tensor), []).append(op)
    outputs = {int(t) for t in graph.outputs}
    tail = [op for op in graph.operators if not is_postprocess(op) and all(
        int(t) not in outputs and readers.get(int(t)) and all(is_postprocess(r) for r in readers[int(t)])
        for t in op.outputs)]
    graph.operators = [op for op in graph.operators if op not in tail and op not in post] + tail + post
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
