"""The detector families' losses (SSD: smooth L1 + focal; YOLO: coordinates, objectness, classes;
Faster R-CNN: the RPN's and the second stage's). Each family's head (models/detection/head.py)
picks its own; targets come from models/detection/boxes.py."""

from __future__ import annotations

from tfpipe.backend import keras, tf
from tfpipe.runtime.detection import SCALES


@keras.utils.register_keras_serializable(package="tfpipe")
class BoxLoss(keras.losses.Loss):
    """SSD's localisation loss: smooth L1 (Huber, delta 1) over the 4 encodings of the positive
    anchors, divided by their number, per image. y_true [B, N, 5]: the encodings and, last, the
    anchor's class id (0 = background, whose encodings are ignored)."""

    def __init__(self, name: str = "box_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        positive = tf.cast(y_true[..., 4] > 0, y_pred.dtype)
        error = tf.abs(y_true[..., :4] - y_pred)
        smooth_l1 = tf.reduce_sum(tf.where(error < 1.0, 0.5 * error ** 2, error - 0.5), axis=-1)
        return tf.math.divide_no_nan(tf.reduce_sum(smooth_l1 * positive, -1), tf.reduce_sum(positive, -1))


@keras.utils.register_keras_serializable(package="tfpipe")
class FocalLoss(keras.losses.Loss):
    """The focal loss (Lin et al., ICCV 2017) over every anchor and class, divided by the number of
    positive anchors, per image: alpha_t (1 - p_t)^gamma x binary cross-entropy of each sigmoid
    score. It takes the place of SSD's hard negative mining: the easy background anchors weigh
    almost nothing. y_true [B, N]: class ids, 0 = background, c + 1 = class c; y_pred [B, N, classes]."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, name: str = "focal_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha, self.gamma = alpha, gamma

    def call(self, y_true, y_pred):
        labels = tf.cast(tf.reshape(y_true, tf.shape(y_pred)[:-1]), tf.int32)
        target = tf.one_hot(labels - 1, tf.shape(y_pred)[-1], dtype=y_pred.dtype)  # background: all zeros
        p = tf.clip_by_value(y_pred, 1e-7, 1 - 1e-7)
        p_t = target * p + (1 - target) * (1 - p)
        alpha_t = target * self.alpha + (1 - target) * (1 - self.alpha)
        loss = -alpha_t * (1 - p_t) ** self.gamma * tf.math.log(p_t)
        positives = tf.reduce_sum(tf.cast(labels > 0, y_pred.dtype), axis=-1)
        return tf.reduce_sum(loss, axis=[-2, -1]) / tf.maximum(positives, 1.0)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma}


def _bce(p, target):
    p = tf.clip_by_value(p, 1e-7, 1 - 1e-7)
    return -(target * tf.math.log(p) + (1 - target) * tf.math.log(1 - p))


class YoloBoxLoss(keras.losses.Loss):
    """YOLO's coordinate term: lambda_coord x the squared error of the responsible anchors' centre
    offsets (in grid cells, YOLOv2's sigmoid(t_yx)) and log sizes (t_hw), each weighted by
    2 - w * h (YOLOv3: small boxes count more), summed per image. The model outputs SSD encodings
    (models/detection/yolo.py); per anchor, prior / (10 * cell) and 1 / 5 turn their differences
    back into YOLO's units. y_true [B, N, 5] as BoxLoss's."""

    def __init__(self, anchors, cells, lambda_coord: float = 5.0, name: str = "yolo_box_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        anchors = tf.constant(anchors, tf.float32)
        self.prior_hw = anchors[:, 2:]
        self.units = tf.concat([anchors[:, 2:] / (10.0 * tf.constant(cells, tf.float32)),
                                tf.fill([anchors.shape[0], 2], 1 / 5.0)], axis=-1)
        self.lambda_coord = lambda_coord

    def call(self, y_true, y_pred):
        positive = tf.cast(y_true[..., 4] > 0, y_pred.dtype)
        size = self.prior_hw * tf.exp(y_true[..., 2:4] / 5.0)  # the ground truth's (h, w), normalised
        weight = 2.0 - size[..., 0] * size[..., 1]
        error = tf.reduce_sum(((y_true[..., :4] - y_pred) * self.units) ** 2, axis=-1)
        return self.lambda_coord * tf.reduce_sum(error * weight * positive, axis=-1)


class ObjectnessLoss(keras.losses.Loss):
    """YOLO's confidence term: binary cross-entropy of the objectness, towards 1 at the responsible
    anchors and towards 0, weighted by lambda_noobj, at background anchors; anchors marked ignored
    (class id -1) add nothing. Summed per image. y_true [B, N] class ids, y_pred [B, N, 1]."""

    def __init__(self, lambda_noobj: float = 0.5, name: str = "objectness_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.lambda_noobj = lambda_noobj

    def call(self, y_true, y_pred):
        p = tf.reshape(y_pred, tf.shape(y_pred)[:2])
        labels = tf.cast(tf.reshape(y_true, tf.shape(p)), tf.int32)
        positive, background = tf.cast(labels > 0, p.dtype), tf.cast(labels == 0, p.dtype)
        return tf.reduce_sum(positive * _bce(p, 1.0) + self.lambda_noobj * background * _bce(p, 0.0), axis=-1)


class YoloClassLoss(keras.losses.Loss):
    """YOLOv3's classification term: binary cross-entropy of every class probability at the
    responsible anchors (independent logistic classifiers), summed per image. y_true [B, N] class
    ids (c + 1), y_pred [B, N, classes]."""

    def __init__(self, name: str = "yolo_class_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        labels = tf.cast(tf.reshape(y_true, tf.shape(y_pred)[:-1]), tf.int32)
        target = tf.one_hot(labels - 1, tf.shape(y_pred)[-1], dtype=y_pred.dtype)
        positive = tf.cast(labels > 0, y_pred.dtype)
        return tf.reduce_sum(tf.reduce_sum(_bce(y_pred, target), axis=-1) * positive, axis=-1)


class RpnObjectnessLoss(keras.losses.Loss):
    """The RPN's objectness term: binary cross-entropy, the mean over the object anchors and the
    mean over the background anchors averaged, which is what Faster R-CNN's 1:1 sampling of anchors
    gives in expectation; ignored anchors (class id -1) add nothing. y_true [B, A], y_pred [B, A, 1]."""

    def __init__(self, name: str = "rpn_objectness_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        p = tf.reshape(y_pred, tf.shape(y_pred)[:2])
        labels = tf.cast(tf.reshape(y_true, tf.shape(p)), tf.int32)
        positive, background = tf.cast(labels > 0, p.dtype), tf.cast(labels == 0, p.dtype)
        object_term = tf.math.divide_no_nan(tf.reduce_sum(positive * _bce(p, 1.0), -1), tf.reduce_sum(positive, -1))
        background_term = tf.math.divide_no_nan(tf.reduce_sum(background * _bce(p, 0.0), -1),
                                                tf.reduce_sum(background, -1))
        return 0.5 * (object_term + background_term)


class FastRCNNLoss(keras.losses.Loss):
    """The second stage's loss (Fast R-CNN, section 2.3): each proposal takes the ground truth it
    overlaps most; at IoU >= `match_iou` it learns that class and the box (smooth L1 on the
    encoding relative to the proposal, over those proposals), below it background. Cross-entropy
    is averaged over all proposals. The proposals come from the model (approximate joint training),
    so the matching happens here: y_true [B, M, 5] ground truths (ymin, xmin, ymax, xmax, class + 1;
    zero rows are padding), y_pred [B, K, 4 + 4 + classes + 1] (proposals, encodings, softmax)."""

    def __init__(self, match_iou: float = 0.5, name: str = "rcnn_head_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.match_iou = match_iou

    def call(self, y_true, y_pred):
        proposals, encodings, probabilities = y_pred[..., :4], y_pred[..., 4:8], y_pred[..., 8:]
        ground_truth, ids = y_true[..., :4], tf.cast(y_true[..., 4], tf.int32)
        low = tf.maximum(proposals[:, :, None, :2], ground_truth[:, None, :, :2])
        high = tf.minimum(proposals[:, :, None, 2:], ground_truth[:, None, :, 2:])
        inter = tf.reduce_prod(tf.maximum(high - low, 0.0), -1)

        def area(b):
            return tf.reduce_prod(tf.maximum(b[..., 2:] - b[..., :2], 0.0), -1)

        iou = tf.math.divide_no_nan(inter, area(proposals)[:, :, None] + area(ground_truth)[:, None, :] - inter)
        iou = tf.where(ids[:, None, :] > 0, iou, -1.0)  # padding never matches
        best = tf.argmax(iou, axis=-1, output_type=tf.int32)  # [B, K]
        matched = tf.reduce_max(iou, axis=-1) >= self.match_iou
        labels = tf.where(matched, tf.gather(ids, best, batch_dims=1), 0)
        chosen = tf.gather(probabilities, labels[..., None], batch_dims=2)[..., 0]
        cross_entropy = -tf.reduce_mean(tf.math.log(tf.clip_by_value(chosen, 1e-7, 1.0)), -1)
        target = tf.gather(ground_truth, best, batch_dims=1)
        size = tf.maximum(proposals[..., 2:] - proposals[..., :2], 1e-3)
        centre = (proposals[..., :2] + proposals[..., 2:]) / 2
        t_size = tf.maximum(target[..., 2:] - target[..., :2], 1e-3)
        t_centre = (target[..., :2] + target[..., 2:]) / 2
        scales = tf.constant(SCALES, tf.float32)
        encoded = tf.concat([(t_centre - centre) / size, tf.math.log(t_size / size)], -1) * scales
        error = tf.abs(encoded - encodings)
        smooth_l1 = tf.reduce_sum(tf.where(error < 1.0, 0.5 * error ** 2, error - 0.5), -1)
        positive = tf.cast(matched, y_pred.dtype)
        box = tf.math.divide_no_nan(tf.reduce_sum(smooth_l1 * positive, -1), tf.reduce_sum(positive, -1))
        return cross_entropy + box
