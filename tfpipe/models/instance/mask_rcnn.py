"""Mask R-CNN (He et al., ICCV 2017) as the lectures teach it: Faster R-CNN (models/detection/
faster_rcnn.py: ResNet-18 C4, RPN, RoIAlign, box head) plus, per detection, a mask head on
RoIAlign features and, optionally, a keypoint head.

- Mask head: RoIAlign 14x14 on the RoI feature map -> two 3x3 convolutions -> a 2x2 stride-2
  transposed convolution -> a 1x1 convolution and a sigmoid: a 28x28 soft mask per RoI. The mask is
  class-agnostic: the paper's ablation (section 4.2, "Class-Specific vs. Class-Agnostic Masks")
  finds it nearly as good (29.7 vs 30.3 mask AP), and it makes the device output 28x28 per
  detection instead of 28x28 x classes (10x smaller here). Trained with per-pixel binary
  cross-entropy on the RoIs matched to an object (IoU >= detection.match_iou); the target is the
  matched object's mask sampled at the 28x28 cell centres of the RoI (`mask_targets`).
- Keypoint head (`keypoints: K` > 0): the same 14x14 RoI features -> two 3x3 convolutions -> a 2x2
  stride-2 transposed convolution -> K maps of 28x28 logits, "one mask per keypoint, softmax over
  spatial locations": each visible keypoint inside its RoI is one cell of its map, learned by
  softmax cross-entropy over the 784 cells (`keypoint_targets`).
- Both heads run on the *detections' boxes*: the proposals refined by the box head
  (`RefinedBoxes`, without gradient), at training as at inference, so a mask is always predicted
  for the box it is pasted into (the paper trains on proposals and infers on refined boxes; here
  the two are one path, and the graph has no layer called twice). Masks are computed for all K
  proposals' refined boxes; the device keeps those of the boxes NMS keeps (tfpipe.runtime), which
  equals computing them after NMS ("the mask branch is applied to the highest scoring 100
  detection boxes").
- `roi: pool` swaps RoIAlign for Fast R-CNN's RoIPool in both stages, for the lectures' RoIAlign
  vs RoIPool comparison.

Outputs: BOXES and SCORES as Faster R-CNN's, MASKS [B, K, 28, 28] (sigmoid) and, with keypoints,
KEYPOINTS [B, K, 28, 28, K] (logits). int8: the box decoding (`refined_boxes`), the RoI
sampling and the proposals stay float, as Faster R-CNN's; the heads' convolutions are int8.
"""

from __future__ import annotations

from tfpipe.backend import keras, tf
from tfpipe.models.detection import faster_rcnn as F
from tfpipe.models.detection.losses import bce
from tfpipe.models.registry import custom_layer, register
from tfpipe.runtime.contract import BOXES, KEYPOINTS, MASKS, SCORES
from tfpipe.runtime.detection import SCALES

L = keras.layers
MASK_HEAD, KEYPOINT_HEAD = "mask_head", "keypoint_head"  # training outputs: refined boxes + each head's maps
MAX_INSTANCES = 16  # objects per image whose masks and keypoints the losses see (FashionScenes has at most 5)


@custom_layer
@keras.utils.register_keras_serializable(package="tfpipe")
class RefinedBoxes(L.Layer):
    """[proposals [B, K, 4] corners, head encodings [B, K, 4] relative to them] -> the detections'
    boxes [B, K, 4] (ymin, xmin, ymax, xmax) normalised, clipped to the image, without gradient: the
    boxes the mask and keypoint heads look at (the decoding of UnitAnchorEncoding's output)."""

    # QAT (tfpipe.qat) quantizes its output: decoded corners are new values (int8 keeps the layer float)
    quantize_output = True

    def call(self, inputs):
        proposals, encodings = inputs
        size = tf.maximum(proposals[..., 2:] - proposals[..., :2], 1e-3)
        centre = (proposals[..., :2] + proposals[..., 2:]) / 2
        t = encodings / tf.constant(SCALES, tf.float32)
        box_centre = centre + t[..., :2] * size
        box_size = size * tf.exp(tf.minimum(t[..., 2:], 4.0))
        corners = tf.concat([box_centre - box_size / 2, box_centre + box_size / 2], -1)
        return tf.stop_gradient(tf.clip_by_value(corners, 0.0, 1.0))

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@custom_layer
@keras.utils.register_keras_serializable(package="tfpipe")
class PerRoI(L.Layer):
    """[B, K, P * P * C] RoI features -> [B * K, P, P, C]: one image per RoI for the convolutions."""

    # QAT (tfpipe.qat) leaves its output alone: a reshape only moves quantized values
    quantize_output = False

    def __init__(self, pool_size: int, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.pool_size, self.channels = pool_size, channels

    def call(self, x):
        return tf.reshape(x, [-1, self.pool_size, self.pool_size, self.channels])

    def compute_output_shape(self, input_shape):
        return (None, self.pool_size, self.pool_size, self.channels)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "channels": self.channels}


@custom_layer
@keras.utils.register_keras_serializable(package="tfpipe")
class PerImage(L.Layer):
    """[B * K, S, S, X] -> [B, K, S, S, X], or [B, K, S, S] when `squeeze` (X = 1): the heads'
    maps back to one row per RoI."""

    # QAT (tfpipe.qat) leaves its output alone: a reshape only moves quantized values
    quantize_output = False

    def __init__(self, rois: int, squeeze: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.rois, self.squeeze = rois, squeeze

    def call(self, x):
        shape = tf.shape(x)
        tail = [shape[1], shape[2]] if self.squeeze else [shape[1], shape[2], shape[3]]
        return tf.reshape(x, tf.concat([[-1, self.rois], tail], 0))

    def compute_output_shape(self, input_shape):
        tail = tuple(input_shape[1:3]) if self.squeeze else tuple(input_shape[1:])
        return (None, self.rois, *tail)

    def get_config(self):
        return {**super().get_config(), "rois": self.rois, "squeeze": self.squeeze}


def _map_head(x, filters: int, outputs: int, activation, prefix: str):
    """Two 3x3 convolutions, a 2x2 stride-2 transposed convolution (14 -> 28), a 1x1 convolution."""
    for i in (1, 2):
        x = L.Conv2D(filters, 3, padding="same", activation="relu", name=f"{prefix}_conv{i}")(x)
    x = L.Conv2DTranspose(filters, 2, strides=2, activation="relu", name=f"{prefix}_up")(x)
    return L.Conv2D(outputs, 1, activation=activation, name=f"{prefix}_logits" if activation is None
                    else f"{prefix}_{activation}")(x)


def mask_rcnn(input_shape, num_classes: int, depth: int = 18, sizes=(0.15, 0.3, 0.6), ratios=(0.5, 1.0, 2.0),
              proposals: int = 32, pool_size: int = 7, sampling: int = 2, roi_channels: int = 64,
              rpn_filters: int = 128, head_units: int = 256, roi: str = "align", mask_pool: int = 14,
              mask_filters: int = 32, keypoints: int = 0):
    if mask_pool < 1 or mask_filters < 1 or keypoints < 0:
        raise ValueError(f"mask_pool and mask_filters must be at least 1 and keypoints at least 0, got "
                         f"{mask_pool}, {mask_filters}, {keypoints}")
    t = F.two_stage(input_shape, num_classes, depth, sizes, ratios, proposals, pool_size, sampling, roi_channels,
                    rpn_filters, head_units, roi)
    boxes = RefinedBoxes(name="refined_boxes")([t["proposals"], t["head_boxes"]])
    rois = F.roi_layer(roi, mask_pool, sampling, "mask_roi_align")([t["features"], boxes])
    per_roi = PerRoI(mask_pool, roi_channels, name="mask_rois")(rois)
    masks = _map_head(per_roi, mask_filters, 1, "sigmoid", "mask")
    outputs = [t[BOXES], t[SCORES], PerImage(proposals, squeeze=True, name=MASKS)(masks)]
    if keypoints:
        heatmaps = _map_head(per_roi, mask_filters, keypoints, None, "keypoint")
        outputs.append(PerImage(proposals, name=KEYPOINTS)(heatmaps))
    return keras.Model(t["input"], outputs, name=f"mask_rcnn_resnet{depth}")


# --- training targets and losses -----------------------------------------------------------------


def mask_targets(masks, boxes, size: int):
    """The mask head's targets: masks [N, H, W] (1 inside the object) sampled at the size x size cell
    centres of boxes [N, 4] (ymin, xmin, ymax, xmax normalised): cell (i, j) reads the mask at pixel
    coordinates ((ymin + (i + 0.5) / size (ymax - ymin)) H - 0.5, the same in x), bilinearly, 0
    beyond the image's outer pixel centres, and is the object where that is >= 0.5. -> [N, size,
    size] float 0/1. (tf.image.crop_and_resize, its corner-aligned box moved to these centres.)"""
    shape = tf.shape(masks)
    h, w = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)

    def aligned(low, high, extent):  # crop_and_resize samples low' (E - 1) + j (high' - low') (E - 1) / (S - 1)
        first = (low * extent + 0.5 * (high - low) * extent / size - 0.5) / (extent - 1.0)
        step = (high - low) * extent / size / (extent - 1.0)
        return first, first + step * (size - 1)

    y1, y2 = aligned(boxes[:, 0], boxes[:, 2], h)
    x1, x2 = aligned(boxes[:, 1], boxes[:, 3], w)
    crops = tf.image.crop_and_resize(tf.cast(masks, tf.float32)[..., None], tf.stack([y1, x1, y2, x2], -1),
                                     tf.range(tf.shape(boxes)[0]), (size, size), extrapolation_value=0.0)
    return tf.cast(crops[..., 0] >= 0.5, tf.float32)


def keypoint_targets(keypoints, boxes, size: int, image_size: tuple[int, int]):
    """keypoints [N, K, 3] (x, y in pixels, visibility), boxes [N, 4] normalised corners -> (cell
    index row * size + col [N, K] int32, valid [N, K] bool: labelled and inside the box's
    size x size grid). Cell col = floor((x - x1) / (x2 - x1) * size) with the box in pixels."""
    height, width = float(image_size[0]), float(image_size[1])
    y1, x1 = boxes[:, None, 0] * height, boxes[:, None, 1] * width
    y2, x2 = boxes[:, None, 2] * height, boxes[:, None, 3] * width
    col = tf.floor((keypoints[..., 0] - x1) / tf.maximum(x2 - x1, 1e-6) * size)
    row = tf.floor((keypoints[..., 1] - y1) / tf.maximum(y2 - y1, 1e-6) * size)
    valid = (keypoints[..., 2] > 0) & (col >= 0) & (col < size) & (row >= 0) & (row < size)
    index = tf.cast(tf.clip_by_value(row, 0, size - 1) * size + tf.clip_by_value(col, 0, size - 1), tf.int32)
    return index, valid


def _matched(y_true, rois, match_iou: float):
    """The RoIs' matched ground truths: (flat index into the batch's [B * M] objects, matched [B, K])."""
    ground_truth, ids = y_true[..., :4], tf.cast(y_true[..., 4], tf.int32)
    best, matched = F.match_rois(rois, ground_truth, ids, match_iou)
    m = tf.shape(y_true)[1]
    flat = best + tf.range(tf.shape(y_true)[0])[:, None] * m
    return flat, matched


class RoILoss(keras.losses.Loss):
    """A loss on the refined boxes' maps, matched to ground truths at `match_iou` in an image of
    `image_size` (height, width)."""

    def __init__(self, image_size=(128, 128), match_iou: float = 0.5, name: str = "roi_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.image_size, self.match_iou = tuple(image_size), match_iou

    def get_config(self):
        return {**super().get_config(), "image_size": list(self.image_size), "match_iou": self.match_iou}


class MaskLoss(RoILoss):
    """Mask R-CNN's L_mask: the mean per-pixel binary cross-entropy of each matched RoI's mask
    against its object's (`mask_targets`), averaged over the matched RoIs; RoIs matched to nothing
    add nothing. y_true [B, M, 5 + H * W] (the ground truths as Faster R-CNN's head sees them, then
    each object's mask flattened); y_pred [B, K, 4 + S * S] (the refined boxes, the soft masks)."""

    def __init__(self, image_size=(128, 128), match_iou: float = 0.5, name: str = "mask_loss", **kwargs):
        super().__init__(image_size, match_iou, name=name, **kwargs)

    def call(self, y_true, y_pred):
        rois = y_pred[..., :4]
        flat, matched = _matched(y_true, rois, self.match_iou)
        b, k = tf.shape(y_pred)[0], tf.shape(y_pred)[1]
        size = int(round((y_pred.shape[-1] - 4) ** 0.5))
        height, width = self.image_size
        masks = tf.reshape(y_true[..., 5:], [-1, height, width])
        target = mask_targets(tf.gather(masks, tf.reshape(flat, [-1])), tf.reshape(rois, [-1, 4]), size)
        predicted = tf.reshape(y_pred[..., 4:], [-1, size, size])
        per_roi = tf.reshape(tf.reduce_mean(bce(predicted, target), [1, 2]), [b, k])
        positive = tf.cast(matched, y_pred.dtype)
        return tf.math.divide_no_nan(tf.reduce_sum(per_roi * positive, -1), tf.reduce_sum(positive, -1))


class KeypointLoss(RoILoss):
    """Mask R-CNN's keypoint loss: softmax cross-entropy over each map's S x S cells against the one
    cell of its keypoint (`keypoint_targets`), averaged over the (matched RoI, labelled keypoint
    inside it) pairs. y_true [B, M, 5 + 3 K]; y_pred [B, K_rois, 4 + S * S * K] (refined boxes, the
    maps' logits as the head gives them: [S, S, K] flattened)."""

    def __init__(self, image_size=(128, 128), match_iou: float = 0.5, name: str = "keypoint_loss", **kwargs):
        super().__init__(image_size, match_iou, name=name, **kwargs)

    def call(self, y_true, y_pred):
        rois = y_pred[..., :4]
        flat, matched = _matched(y_true, rois, self.match_iou)
        count = (y_true.shape[-1] - 5) // 3
        size = int(round(((y_pred.shape[-1] - 4) / count) ** 0.5))
        keypoints = tf.gather(tf.reshape(y_true[..., 5:], [-1, count, 3]), tf.reshape(flat, [-1]))
        index, valid = keypoint_targets(keypoints, tf.reshape(rois, [-1, 4]), size, self.image_size)
        logits = tf.transpose(tf.reshape(y_pred[..., 4:], [-1, size * size, count]), [0, 2, 1])  # [N, K, S * S]
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=index, logits=logits)
        weight = tf.cast(valid, y_pred.dtype) * tf.reshape(tf.cast(matched, y_pred.dtype), [-1, 1])
        b = tf.shape(y_pred)[0]
        return tf.math.divide_no_nan(tf.reduce_sum(tf.reshape(loss * weight, [b, -1]), -1),
                                     tf.reduce_sum(tf.reshape(weight, [b, -1]), -1))


def instance_targets(images, boxes, classes, masks, keypoints, rpn_anchors) -> dict:
    """Faster R-CNN's targets (`two_stage_targets`) and the heads': each image's first MAX_INSTANCES
    objects as [B, M, 5] ground truths followed by their masks [H * W] (MASK_HEAD) and keypoints
    [3 K] (KEYPOINT_HEAD); zero rows pad."""
    out = F.two_stage_targets(images, boxes, classes, rpn_anchors)
    ground_truth = out[F.HEAD][:, :MAX_INSTANCES]
    height, width = images.shape[1], images.shape[2]
    flat_masks = masks[:, :MAX_INSTANCES].to_tensor(0.0, shape=[None, MAX_INSTANCES, height, width])
    out[MASK_HEAD] = tf.concat([ground_truth, tf.reshape(flat_masks, [-1, MAX_INSTANCES, height * width])], -1)
    count = keypoints.shape[-2] if keypoints.shape.rank == 4 else 0
    points = keypoints[:, :MAX_INSTANCES].to_tensor(0.0, shape=[None, MAX_INSTANCES, count, 3])
    out[KEYPOINT_HEAD] = tf.concat([ground_truth, tf.reshape(points, [-1, MAX_INSTANCES, count * 3])], -1)
    return out


class MaskHead(F.TwoStageHead):
    """Mask R-CNN's training: Faster R-CNN's (RPN and box head) plus the mask and keypoint losses
    on the refined boxes, matched to ground truths inside the losses as the box head's are."""

    # as Faster R-CNN's, and the refined boxes' decoding and the mask RoIs' sampling
    float_layers = (*F.TwoStageHead.float_layers, "refined_boxes", "mask_roi_align")

    def losses(self, settings, geometry: dict) -> dict:
        size = geometry["image_size"]
        return {**super().losses(settings, geometry), MASK_HEAD: MaskLoss(size, settings.match_iou),
                KEYPOINT_HEAD: KeypointLoss(size, settings.match_iou)}

    def geometry(self, **builder_args) -> dict:
        return {**super().geometry(**builder_args), "image_size": tuple(builder_args["input_shape"][:2])}

    def training_view(self, model, layers: dict):
        """Faster R-CNN's training outputs, then the refined boxes with each head's maps per RoI."""
        base = super().training_view(model, layers)
        boxes = layers["refined_boxes"].output
        outputs = list(base.outputs)
        for name, layer in ((MASK_HEAD, MASKS), (KEYPOINT_HEAD, KEYPOINTS)):
            if layer in layers:
                maps = layers[layer].output
                flat = L.Reshape((maps.shape[1], -1), name=f"{name}_maps")(maps)
                outputs.append(L.Concatenate(name=name)([boxes, flat]))
        return keras.Model(model.input, outputs, name=model.name)

    def instance_targets(self, images, boxes, classes, masks, keypoints, geometry: dict) -> dict:
        return instance_targets(images, boxes, classes, masks, keypoints, geometry["rpn"])


register("mask_rcnn", "instance_segmentation", mask_rcnn, head=MaskHead())
register("mask_rcnn_resnet18", "instance_segmentation", mask_rcnn, head=MaskHead(), depth=18)
