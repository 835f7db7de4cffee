package dev.tfpipe.core

import kotlin.math.exp
import kotlin.math.max
import kotlin.math.min

/** One detection: corners x1 y1 x2 y2 in pixels, the class index (background excluded) and its score. */
data class Detection(val x1: Float, val y1: Float, val x2: Float, val y2: Float, val classIndex: Int, val score: Float)

/**
 * A detector's outputs -> boxes: the Kotlin twin of tfpipe/runtime/detection.py, with the same
 * conventions as TFLite_Detection_PostProcess so a raw bundle (host NMS) and the fused op agree:
 * anchors (cy, cx, h, w) normalised; encodings (ty, tx, th, tw) = SSD's, divided by `scales`;
 * decoded corners (ymin, xmin, ymax, xmax) normalised; class-wise greedy NMS.
 */
object Detections {
    val SCALES = floatArrayOf(10f, 10f, 5f, 5f)

    /** Encodings [N * 4] relative to anchors [N * 4] -> corners [N * 4] (ymin, xmin, ymax, xmax). */
    fun decode(encodings: FloatArray, anchors: FloatArray, scales: FloatArray = SCALES): FloatArray {
        require(encodings.size == anchors.size) { "${encodings.size / 4} box encodings for ${anchors.size / 4} anchors" }
        val out = FloatArray(encodings.size)
        for (i in 0 until encodings.size / 4) {
            val b = 4 * i
            val ty = encodings[b] / scales[0]
            val tx = encodings[b + 1] / scales[1]
            val th = encodings[b + 2] / scales[2]
            val tw = encodings[b + 3] / scales[3]
            val cy = anchors[b] + ty * anchors[b + 2]
            val cx = anchors[b + 1] + tx * anchors[b + 3]
            val h = anchors[b + 2] * exp(th)
            val w = anchors[b + 3] * exp(tw)
            out[b] = cy - h / 2
            out[b + 1] = cx - w / 2
            out[b + 2] = cy + h / 2
            out[b + 3] = cx + w / 2
        }
        return out
    }

    /** IoU of boxes i and j of a flat corner array (either corner order), in double as NumPy's. */
    fun iou(boxes: FloatArray, i: Int, j: Int): Double {
        val a = 4 * i
        val b = 4 * j
        val inter = max(0.0, min(boxes[a + 2], boxes[b + 2]).toDouble() - max(boxes[a], boxes[b])) *
            max(0.0, min(boxes[a + 3], boxes[b + 3]).toDouble() - max(boxes[a + 1], boxes[b + 1]))
        val areaA = max(0.0, boxes[a + 2].toDouble() - boxes[a]) * max(0.0, boxes[a + 3].toDouble() - boxes[a + 1])
        val areaB = max(0.0, boxes[b + 2].toDouble() - boxes[b]) * max(0.0, boxes[b + 3].toDouble() - boxes[b + 1])
        val union = areaA + areaB - inter
        return if (union > 0) inter / union else 0.0
    }

    /** A kept box: its row in `boxes`, its class and score. */
    data class Kept(val index: Int, val classIndex: Int, val score: Float)

    /**
     * Class-wise greedy NMS. boxes [N * 4] corners shared by the classes, scores [N * C]. Per class:
     * candidates above `scoreThreshold`, highest first; each kept box removes the later ones whose
     * IoU with it exceeds `iouThreshold`. At most `maxTotal` over the classes, highest score first;
     * equal scores keep the lower class, then the lower anchor, first (Python orders them so too).
     */
    fun nms(boxes: FloatArray, scores: FloatArray, classes: Int, iouThreshold: Float, scoreThreshold: Float,
            maxPerClass: Int, maxTotal: Int): List<Kept> {
        val n = boxes.size / 4
        require(scores.size == n * classes) { "${scores.size} scores for $n boxes of $classes classes" }
        val kept = ArrayList<Kept>()
        for (c in 0 until classes) {
            // sortedByDescending is stable: equal scores stay in anchor order
            val order = (0 until n).filter { scores[it * classes + c] > scoreThreshold }
                .sortedByDescending { scores[it * classes + c] }
            val alive = BooleanArray(order.size) { true }
            var count = 0
            for (i in order.indices) {
                if (!alive[i]) continue
                kept.add(Kept(order[i], c, scores[order[i] * classes + c]))
                if (++count == maxPerClass) break
                for (j in i + 1 until order.size) {
                    if (alive[j] && iou(boxes, order[i], order[j]) > iouThreshold) alive[j] = false
                }
            }
        }
        return kept.sortedByDescending { it.score }.take(maxTotal)
    }

    /** Normalised corners (ymin, xmin, ymax, xmax) clipped to 0..1 -> x1 y1 x2 y2 in pixels of the model input. */
    fun toPixels(yxyx: FloatArray, index: Int, height: Int, width: Int): FloatArray {
        val b = 4 * index
        fun clip(v: Float) = v.coerceIn(0f, 1f)
        return floatArrayOf(clip(yxyx[b + 1]) * width, clip(yxyx[b]) * height, clip(yxyx[b + 3]) * width, clip(yxyx[b + 2]) * height)
    }
}
