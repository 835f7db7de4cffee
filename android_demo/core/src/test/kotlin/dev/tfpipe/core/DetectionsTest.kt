package dev.tfpipe.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test
import kotlin.math.ln
import kotlin.random.Random

class DetectionsTest {
    @Test
    fun decodingFollowsTheSsdEncodingWithItsVariances() {
        val anchors = floatArrayOf(0.5f, 0.5f, 0.2f, 0.4f)
        val corners = Detections.decode(floatArrayOf(1f, -2f, 5 * ln(2f), 0f), anchors)
        // cy = 0.5 + 1/10 * 0.2, cx = 0.5 - 2/10 * 0.4, h = 0.2 * 2, w = 0.4
        assertArrayEquals(floatArrayOf(0.32f, 0.22f, 0.72f, 0.62f), corners, 1e-6f)
    }

    @Test
    fun encodeThenDecodeGivesTheBoxesBack() {
        val random = Random(7)
        repeat(200) {
            val a = floatArrayOf(random.nextFloat(), random.nextFloat(), 0.05f + random.nextFloat(), 0.05f + random.nextFloat())
            val box = floatArrayOf(random.nextFloat(), random.nextFloat(), 0.05f + random.nextFloat(), 0.05f + random.nextFloat())
            val t = floatArrayOf((box[0] - a[0]) / a[2] * 10, (box[1] - a[1]) / a[3] * 10, ln(box[2] / a[2]) * 5, ln(box[3] / a[3]) * 5)
            val back = Detections.decode(t, a)
            assertArrayEquals(floatArrayOf(box[0] - box[2] / 2, box[1] - box[3] / 2, box[0] + box[2] / 2, box[1] + box[3] / 2), back, 1e-5f)
        }
    }

    /** The lectures' NMS, written the slow way: per class, take the best remaining box, drop its overlaps, repeat. */
    private fun bruteForce(boxes: FloatArray, scores: FloatArray, classes: Int, iou: Float, threshold: Float): List<Detections.Kept> {
        val out = ArrayList<Detections.Kept>()
        val n = boxes.size / 4
        for (c in 0 until classes) {
            val remaining = (0 until n).filter { scores[it * classes + c] > threshold }.toMutableList()
            while (remaining.isNotEmpty()) {
                val best = remaining.maxWith(compareBy<Int> { scores[it * classes + c] }.thenByDescending { it })
                out.add(Detections.Kept(best, c, scores[best * classes + c]))
                remaining.removeAll { it == best || Detections.iou(boxes, best, it) > iou }
            }
        }
        return out.sortedByDescending { it.score }  // stable: equal scores stay by class, then by pick order
    }

    @Test
    fun nmsMatchesTheBruteForceReference() {
        val random = Random(3)
        repeat(30) { trial ->
            val n = 60
            val classes = 3
            val boxes = FloatArray(4 * n)
            for (i in 0 until n) {
                val y = random.nextFloat() * 0.7f
                val x = random.nextFloat() * 0.7f
                boxes[4 * i] = y; boxes[4 * i + 1] = x
                boxes[4 * i + 2] = y + 0.05f + random.nextFloat() * 0.3f; boxes[4 * i + 3] = x + 0.05f + random.nextFloat() * 0.3f
            }
            // scores on a coarse grid, so equal scores (int8 outputs) are common
            val scores = FloatArray(n * classes) { (random.nextInt(20) / 20f) }
            val expected = bruteForce(boxes, scores, classes, 0.5f, 0.1f)
            val got = Detections.nms(boxes, scores, classes, 0.5f, 0.1f, n, n * classes)
            assertEquals("trial $trial", expected, got)
        }
    }

    @Test
    fun nmsKeepsAtMostTheLimitsAndOrdersTiesByClassThenAnchor() {
        val boxes = floatArrayOf(0f, 0f, 1f, 1f, 0f, 0f, 0.1f, 0.1f, 0.5f, 0.5f, 0.6f, 0.6f)
        val scores = floatArrayOf(0.9f, 0.9f, 0.9f, 0.9f, 0.5f, 0.2f)
        val all = Detections.nms(boxes, scores, 2, 0.5f, 0.05f, 10, 10)
        assertEquals(listOf(Detections.Kept(0, 0, 0.9f), Detections.Kept(1, 0, 0.9f), Detections.Kept(0, 1, 0.9f),
            Detections.Kept(1, 1, 0.9f), Detections.Kept(2, 0, 0.5f), Detections.Kept(2, 1, 0.2f)), all)
        assertEquals(2, Detections.nms(boxes, scores, 2, 0.5f, 0.05f, 1, 10).size)
        assertEquals(3, Detections.nms(boxes, scores, 2, 0.5f, 0.05f, 10, 3).size)
    }

    @Test
    fun boxesAreClippedToTheInputThenScaledToPixels() {
        assertArrayEquals(floatArrayOf(0f, 32f, 128f, 96f),
            Detections.toPixels(floatArrayOf(0.25f, -0.5f, 0.75f, 1.5f), 0, 128, 128), 0f)
    }
}
