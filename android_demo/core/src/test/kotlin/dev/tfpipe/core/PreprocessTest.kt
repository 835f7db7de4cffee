package dev.tfpipe.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test

class PreprocessTest {
    private fun spec(h: Int, w: Int, c: Int = 1, resize: Resize = Resize.LETTERBOX, bgr: Boolean = false,
                     scale: Float = 1f, offset: Float = 0f, pad: Float = 0f) = PreprocessSpec(h, w, c, resize, scale, offset, bgr, pad)

    @Test
    fun letterboxKeepsTheAspectAndCentresWithTheOddPixelAfter() {
        assertEquals(Placement(64, 32, 0, 16), Preprocess.letterbox(100, 50, 64, 64))
        assertEquals(Placement(2, 4, 1, 0), Preprocess.letterbox(3, 5, 4, 4))
        // Python's round(2.5) is 2 (half to even): the same here
        assertEquals(Placement(2, 5, 1, 0), Preprocess.letterbox(5, 10, 4, 5))
        assertEquals(Placement(96, 96, 0, 0), Preprocess.placement(300, 100, spec(96, 96, resize = Resize.STRETCH)))
    }

    @Test
    fun bilinearResizeUsesHalfPixelCentresAndClampsAtTheBorder() {
        val out = Preprocess.resizeBilinear(floatArrayOf(0f, 10f, 20f, 30f), 2, 2, 1, 4, 4)
        assertArrayEquals(floatArrayOf(
            0f, 2.5f, 7.5f, 10f,
            5f, 7.5f, 12.5f, 15f,
            15f, 17.5f, 22.5f, 25f,
            20f, 22.5f, 27.5f, 30f), out, 0f)
    }

    @Test
    fun channelsAreRepeatedReversedOrWeighedByLuma() {
        val gray = Image(1, 1, 1, intArrayOf(7))
        assertArrayEquals(floatArrayOf(7f, 7f, 7f), Preprocess.apply(gray, spec(1, 1, 3)), 0f)
        val rgb = Image(1, 1, 3, intArrayOf(10, 20, 30))
        assertArrayEquals(floatArrayOf(30f, 20f, 10f), Preprocess.apply(rgb, spec(1, 1, 3, bgr = true)), 0f)
        assertArrayEquals(floatArrayOf(10 * 0.299f + 20 * 0.587f + 30 * 0.114f), Preprocess.apply(rgb, spec(1, 1, 1)), 0f)
    }

    @Test
    fun aWideImageIsLetterboxedOnThePadValueThenScaled() {
        // 1 x 2 into 2 x 2: the image fills row 0 (top = 0), row 1 is padding
        val x = Preprocess.apply(Image(1, 2, 1, intArrayOf(0, 255)), spec(2, 2, scale = 2f / 255f, offset = -1f, pad = -3f))
        assertArrayEquals(floatArrayOf(-1f, 1f, -3f * 2f / 255f - 1f, -3f * 2f / 255f - 1f), x, 1e-6f)
    }

    @Test
    fun argbPixelsBecomeRgb() {
        val image = Image.fromArgb(intArrayOf(0xFF102030.toInt(), 0x80FFFFFF.toInt()), 2, 1)
        assertArrayEquals(intArrayOf(0x10, 0x20, 0x30, 255, 255, 255), image.pixels)
    }

    @Test
    fun quantizationRoundsHalfToEvenAndSaturates() {
        val u8 = TensorSpec("x", intArrayOf(5), DType.UINT8, 0.5, 128)
        // 0.25 / 0.5 = 0.5 rounds to 0 and 0.75 / 0.5 = 1.5 to 2 (half to even, as TFLite and NumPy)
        assertArrayEquals(intArrayOf(128, 128, 130, 255, 0), Quant.quantize(floatArrayOf(0f, 0.25f, 0.75f, 1000f, -1000f), u8))
        assertArrayEquals(floatArrayOf(0f, 0.5f, -64f), Quant.dequantize(intArrayOf(128, 129, 0), u8), 0f)
        val i8 = TensorSpec("y", intArrayOf(2), DType.INT8, 0.1, -3)
        assertArrayEquals(intArrayOf(127, -128), Quant.quantize(floatArrayOf(100f, -100f), i8))
    }
}
