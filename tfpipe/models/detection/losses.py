"""SSD's losses, the default head's (models/detection/head.py): smooth L1 on the encodings and the
focal loss on the class scores. A family with other terms (YOLO's, Faster R-CNN's) defines them in
its family file."""

from __future__ import annotations

from tfpipe.backend import keras, tf


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


def bce(p, target):
    """Binary cross-entropy, elementwise, with p clipped away from 0 and 1 (the logistic terms of YOLO
    and the RPN)."""
    p = tf.clip_by_value(p, 1e-7, 1 - 1e-7)
    return -(target * tf.math.log(p) + (1 - target) * tf.math.log(1 - p))
