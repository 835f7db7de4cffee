"""What a detector family owns besides its graph: a `Head`, registered with the family's variants
(`registry.register(..., head=...)`), gives its anchors (the device contract's box coding), the
geometry its training needs, its losses, the view of the model that training fits, the targets
that view learns (with its own assignment of anchors to ground truths), and the layers int8
conversion keeps in float. The detection task
(tfpipe.tasks.detection) asks the head; nothing else knows a family's internals.

A new family: its file builds the graph (outputs `box_encodings` [B, N, 4] and `class_scores`
[B, N, classes], SSD's box coding relative to its anchors) and registers each variant with a Head
subclass that overrides what differs from SSD's (IoU matching, smooth L1 + focal loss).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from tfpipe.config import DetectionConfig
from tfpipe.models.detection.boxes import assign, training_targets
from tfpipe.models.detection.losses import BoxLoss, FocalLoss
from tfpipe.runtime.contract import BOXES, SCORES


class Head:
    """SSD's head: anchors matched to ground truths by IoU (models/detection/boxes.py), smooth L1
    on the positives' encodings and the focal loss on every anchor's class scores."""

    float_layers: tuple[str, ...] = ()  # layers whose own arithmetic int8 conversion keeps in float

    def __init__(self, anchors: Callable):
        self._anchors = anchors  # the builder's arguments -> anchors [N, 4] (cy, cx, h, w), normalised

    def geometry(self, **builder_args) -> dict:
        """What training needs of this variant's shape, from the builder's arguments; `anchors` is
        always there (the device decodes with them). A ValueError names a bad argument."""
        return {"anchors": self._anchors(**builder_args)}

    def losses(self, settings: DetectionConfig, geometry: dict) -> dict:
        """A loss per output of `training_view`'s model, by output name."""
        return {BOXES: BoxLoss(), SCORES: FocalLoss(settings.focal_alpha, settings.focal_gamma)}

    def training_view(self, model, layers: dict):
        """The model as training fits it (sharing every weight); `layers` maps float layer names
        (tfmot's `quant_` prefix removed) to the layers."""
        return model

    def targets(self, images, boxes, classes, settings: DetectionConfig, geometry: dict) -> dict:
        """A batch's ground truth (ragged xyxy pixel boxes and classes) -> a target per output name."""
        return training_targets(images, boxes, classes, geometry["anchors"],
                                partial(assign, threshold=settings.match_iou))
