package dev.tfpipe.core

import kotlin.math.ceil
import kotlin.math.exp
import kotlin.math.floor
import kotlin.math.max
import kotlin.math.min

/**
 * An instance segmenter's per-detection outputs -> masks and keypoints in the image: the Kotlin
 * twin of tfpipe/runtime/instance.py (the golden test holds the two to the same pixels).
 *
 * A mask is S x S soft values over the detection's box; every image pixel whose centre lies in the
 * box takes the bilinear sample of the grid at that centre (cells at (i + 0.5) / S of the box,
 * clamped to the grid) and is the instance's where it is >= the threshold. A keypoint sits at the
 * centre of its S x S heatmap's arg-max cell (the first of equal maxima, row-major), scored by the
 * softmax probability there.
 */
object InstanceDecoding {
    const val MASK_THRESHOLD = 0.5f

    /** Row `row` of masks [N, sizeY, sizeX] pasted into `box` (x1 y1 x2 y2 pixels) -> [height * width], row-major. */
    fun paste(masks: FloatArray, row: Int, sizeY: Int, sizeX: Int, box: FloatArray, height: Int, width: Int,
              threshold: Float = MASK_THRESHOLD): BooleanArray {
        val out = BooleanArray(height * width)
        val x1 = box[0].toDouble()
        val y1 = box[1].toDouble()
        val x2 = box[2].toDouble()
        val y2 = box[3].toDouble()
        if (!(x2 > x1 && y2 > y1)) return out
        val c0 = max(0, ceil(x1 - 0.5).toInt())
        val c1 = min(width, ceil(x2 - 0.5).toInt())
        val r0 = max(0, ceil(y1 - 0.5).toInt())
        val r1 = min(height, ceil(y2 - 0.5).toInt())
        if (c1 <= c0 || r1 <= r0) return out
        val cols = (c0 until c1).map { sample(it, x1, x2, sizeX) }
        val base = row * sizeY * sizeX
        for (r in r0 until r1) {
            val (ry0, ry1, wy) = sample(r, y1, y2, sizeY)
            for ((j, c) in (c0 until c1).withIndex()) {
                val (cx0, cx1, wx) = cols[j]
                val top = masks[base + ry0 * sizeX + cx0] * (1f - wx) + masks[base + ry0 * sizeX + cx1] * wx
                val bottom = masks[base + ry1 * sizeX + cx0] * (1f - wx) + masks[base + ry1 * sizeX + cx1] * wx
                out[r * width + c] = top * (1f - wy) + bottom * wy >= threshold
            }
        }
        return out
    }

    /** Image pixel -> (lower grid index, upper grid index, weight of the upper) along a box side [low, high). */
    private fun sample(pixel: Int, low: Double, high: Double, size: Int): Triple<Int, Int, Float> {
        val p = ((pixel + 0.5 - low) / (high - low) * size - 0.5).coerceIn(0.0, (size - 1).toDouble())
        val p0 = floor(p).toInt()
        return Triple(p0, min(p0 + 1, size - 1), (p - p0).toFloat())
    }

    /** Row `row` of heatmaps [N, size, size, K] over `box` -> [K * 3]: x, y (pixels) and score of each keypoint. */
    fun keypoints(heatmaps: FloatArray, row: Int, size: Int, count: Int, box: FloatArray): FloatArray {
        val out = FloatArray(count * 3)
        val base = row * size * size * count
        for (k in 0 until count) {
            var best = 0
            for (cell in 1 until size * size) if (heatmaps[base + cell * count + k] > heatmaps[base + best * count + k]) best = cell
            val peak = heatmaps[base + best * count + k]
            // float exponentials summed in double: NumPy's pairwise float sum is that close, a running float sum is not
            var sum = 0.0
            for (cell in 0 until size * size) sum += exp(heatmaps[base + cell * count + k] - peak).toDouble()
            val x1 = box[0].toDouble()
            val y1 = box[1].toDouble()
            out[3 * k] = (x1 + ((best % size) + 0.5) / size * (box[2] - x1)).toFloat()
            out[3 * k + 1] = (y1 + ((best / size) + 0.5) / size * (box[3] - y1)).toFloat()
            out[3 * k + 2] = (1.0 / sum).toFloat()
        }
        return out
    }
}
