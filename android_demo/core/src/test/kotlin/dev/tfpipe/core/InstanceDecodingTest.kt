package dev.tfpipe.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test

class InstanceDecodingTest {
    @Test
    fun aFullMaskPastesToItsBoxAndNothingElse() {
        val pasted = InstanceDecoding.paste(FloatArray(28 * 28) { 1f }, 0, 28, 28, floatArrayOf(2f, 3f, 10f, 7f), 12, 14)
        assertEquals(8 * 4, pasted.count { it })
        for (r in 3 until 7) for (c in 2 until 10) assertTrue(pasted[r * 14 + c])
        assertFalse(InstanceDecoding.paste(FloatArray(28 * 28) { 1f }, 0, 28, 28, floatArrayOf(5f, 5f, 5f, 9f), 12, 14).any { it })
    }

    @Test
    fun theLeftHalfOfASecondRowPastesIntoTheLeftHalfOfItsBox() {
        val masks = FloatArray(2 * 28 * 28)
        for (i in 0 until 28) for (j in 0 until 14) masks[28 * 28 + i * 28 + j] = 1f
        val pasted = InstanceDecoding.paste(masks, 1, 28, 28, floatArrayOf(0f, 0f, 16f, 8f), 8, 16)
        for (r in 0 until 8) for (c in 0 until 16) assertEquals("pixel $r, $c", c < 8, pasted[r * 16 + c])
    }

    @Test
    fun aKeypointSitsAtItsMapsArgmaxCellCentre() {
        val size = 28
        val maps = FloatArray(size * size * 2)
        maps[(3 * size + 5) * 2 + 1] = 10f  // keypoint 1 peaks at row 3, column 5
        val points = InstanceDecoding.keypoints(maps, 0, size, 2, floatArrayOf(0f, 0f, 56f, 28f))
        assertEquals(0.5f * 2, points[0], 1e-5f)  // keypoint 0: all equal, the first cell
        assertEquals(5.5f * 2, points[3], 1e-5f)
        assertEquals(3.5f, points[4], 1e-5f)
        assertEquals((Math.exp(10.0) / (Math.exp(10.0) + size * size - 1)).toFloat(), points[5], 1e-5f)
    }
}
