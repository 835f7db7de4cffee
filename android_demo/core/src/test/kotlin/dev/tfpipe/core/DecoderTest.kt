package dev.tfpipe.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Test

class DecoderTest {
    private val pre = PreprocessSpec(64, 64, 3, Resize.LETTERBOX, 1f, 0f, false, 0f)

    @Test
    fun classificationGivesTheTopKWithTiesInClassOrder() {
        val decoder = Decoder(Task.CLASSIFICATION, listOf("a", "b", "c", "d"), pre, null)
        val p = decoder.decode(mapOf("probabilities" to floatArrayOf(0.1f, 0.4f, 0.1f, 0.4f)), 64, 64, topK = 3)
        assertEquals(Prediction.Classes(listOf("b" to 0.4f, "d" to 0.4f, "a" to 0.1f)), p)
    }

    @Test
    fun theOpsDetectionsAreMappedBackThroughTheLetterbox() {
        // a 50 x 100 image sits in rows 16..48 of the 64 x 64 input, scaled by 100/64
        val decoder = Decoder(Task.DETECTION, listOf("a", "b"), pre, null)
        val outputs = mapOf(
            "num_detections" to floatArrayOf(2f),
            "detection_boxes" to floatArrayOf(0.25f, 0f, 0.75f, 1f, 0.5f, 0.5f, 0.75f, 0.75f, 0f, 0f, 0f, 0f),
            "detection_classes" to floatArrayOf(1f, 0f, 0f),
            "detection_scores" to floatArrayOf(0.9f, 0.3f, 0f))
        val p = decoder.decode(outputs, 50, 100, minScore = 0.5f) as Prediction.Boxes
        assertEquals(listOf(Detection(0f, 0f, 100f, 50f, 1, 0.9f)), p.detections)
        assertEquals("b", p.label(p.detections[0]))
    }

    @Test
    fun aRawBundleIsDecodedOnItsAnchorsAndNmsd() {
        val anchors = floatArrayOf(0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.25f, 0.25f, 0.25f, 0.25f)
        val d = DetectionSpec(anchors, Detections.SCALES, 0.05f, 0.5f, 10)
        val decoder = Decoder(Task.DETECTION, listOf("a"), pre, d)
        val outputs = mapOf("box_encodings" to FloatArray(12), "class_scores" to floatArrayOf(0.8f, 0.9f, 0.6f))
        val p = decoder.decode(outputs, 64, 64) as Prediction.Boxes
        // anchors 0 and 1 are one box: the higher score (anchor 1) survives
        assertEquals(listOf(Detection(16f, 16f, 48f, 48f, 0, 0.9f), Detection(8f, 8f, 24f, 24f, 0, 0.6f)), p.detections)
        val short = mapOf("box_encodings" to FloatArray(8), "class_scores" to floatArrayOf(0.8f, 0.9f))
        assertEquals("box_encodings has 2 rows but model.json has 3 anchors",
            assertThrows(BundleError::class.java) { decoder.decode(short, 64, 64) }.message)
    }

    @Test
    fun theMaskIsTheArgmaxCutFromTheLetterboxAndScaledToTheImage() {
        val pre4 = PreprocessSpec(4, 4, 1, Resize.LETTERBOX, 1f, 0f, false, 0f)
        val decoder = Decoder(Task.SEGMENTATION, listOf("bg", "x", "y"), pre4, null)
        // an image of 2 x 4 occupies rows 1..2 of the 4 x 4 input
        val probabilities = FloatArray(16 * 3)
        val classes = intArrayOf(9, 9, 9, 9, 1, 1, 2, 2, 0, 2, 2, 1, 9, 9, 9, 9)
        for (i in 0 until 16) if (classes[i] != 9) probabilities[3 * i + classes[i]] = 1f
        val mask = decoder.decode(mapOf("probabilities" to probabilities), 4, 8) as Prediction.Mask
        assertEquals(4, mask.height)
        assertArrayEquals(intArrayOf(
            1, 1, 1, 1, 2, 2, 2, 2,
            1, 1, 1, 1, 2, 2, 2, 2,
            0, 0, 2, 2, 2, 2, 1, 1,
            0, 0, 2, 2, 2, 2, 1, 1), mask.classMap)
        val fromMap = decoder.decode(mapOf("class_map" to FloatArray(16) { if (classes[it] == 9) 0f else classes[it].toFloat() }), 4, 8)
        assertArrayEquals(mask.classMap, (fromMap as Prediction.Mask).classMap)
    }

    @Test
    fun thePaletteIsVocsAndTheBackgroundStaysClear() {
        assertEquals(0x800000, Palette.rgb(1))
        assertEquals(0x008000, Palette.rgb(2))
        assertEquals(0x808000, Palette.rgb(3))
        assertEquals(0xC08080, Palette.rgb(15))
        val argb = Palette.colorize(Prediction.Mask(1, 2, intArrayOf(0, 1)), alpha = 0x80)
        assertArrayEquals(intArrayOf(0, 0x80800000.toInt()), argb)
    }
}
