package dev.tfpipe.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Test

class BundleSpecTest {
    private fun bundle(task: String = "detection", preprocess: String = PRE, extra: String = DETECTION) = """
        {"format": "tfpipe-bundle/1", "task": "$task", "classes": ["shirt", "shoe"], "preprocess": $preprocess,
         "models": {"fp32": {"file": "model_fp32.tflite", "quantize": "none",
                             "inputs": {"images": {"shape": [1, 96, 96, 3], "dtype": "float32", "scale": 0.0, "zero_point": 0}},
                             "outputs": {"box_encodings": {"shape": [1, 2, 4], "dtype": "float32", "scale": 0.0, "zero_point": 0}}},
                    "int8": {"file": "model_int8.tflite", "quantize": "int8",
                             "inputs": {"images": {"shape": [1, 96, 96, 3], "dtype": "uint8", "scale": 0.0078125, "zero_point": 128}},
                             "outputs": {"box_encodings": {"shape": [1, 2, 4], "dtype": "int8", "scale": 0.05, "zero_point": -3}}}}
         $extra}"""

    @Test
    fun parsesEverythingTheAppReads() {
        val spec = BundleSpec.parse(bundle())
        assertEquals(Task.DETECTION, spec.task)
        assertEquals(listOf("shirt", "shoe"), spec.classes)
        assertEquals(PreprocessSpec(96, 96, 3, Resize.LETTERBOX, 0.0078125f, -1f, false, 0f), spec.preprocess)
        assertEquals("int8", spec.preferredModel())
        val int8 = spec.model("int8")
        assertEquals("model_int8.tflite", int8.file)
        assertEquals(TensorSpec("images", intArrayOf(1, 96, 96, 3), DType.UINT8, 0.0078125, 128), int8.input)
        assertEquals(DType.INT8, int8.outputs.getValue("box_encodings").dtype)
        val d = spec.detection!!
        assertEquals(2, d.count)
        assertArrayEquals(floatArrayOf(0.5f, 0.5f, 0.2f, 0.1f, 0.25f, 0.75f, 0.5f, 0.5f), d.anchors, 0f)
        assertEquals(0.01f, d.scoreThreshold)
        assertEquals(100, d.maxDetections)
    }

    @Test
    fun aWrongBundleFailsAtLoadNamingTheField() {
        fun error(text: String) = assertThrows(BundleError::class.java) { BundleSpec.parse(text, "assets/model.json") }.message
        assertEquals("assets/model.json: field 'task' is the string \"pose\", expected classification or detection or segmentation or instance_segmentation",
            error(bundle(task = "pose")))
        assertEquals("assets/model.json.preprocess: field 'channels' is the number 4.0, expected 1 or 3",
            error(bundle(preprocess = PRE.replace("\"channels\": 3", "\"channels\": 4"))))
        assertEquals("assets/model.json.preprocess: field 'resize' is the string \"crop\", expected letterbox or stretch",
            error(bundle(preprocess = PRE.replace("letterbox", "crop"))))
        assertEquals("assets/model.json.detection: field 'anchors' is a list, expected rows of 4 numbers (cy, cx, h, w)",
            error(bundle(extra = DETECTION.replace("[0.25, 0.75, 0.5, 0.5]", "[0.25, 0.75]"))))
        assertEquals("assets/model.json: missing field 'classes'", error("""{"task": "classification"}"""))
        assertEquals("model.json: no 'fp16' model (this bundle has: fp32, int8)",
            assertThrows(BundleError::class.java) { BundleSpec.parse(bundle()).model("fp16") }.message)
    }

    companion object {
        const val PRE = """{"height": 96, "width": 96, "channels": 3, "resize": "letterbox", "scale": 0.0078125,
                            "offset": -1.0, "channel_order": "rgb", "pad_value": 0.0}"""
        const val DETECTION = """, "detection": {"anchors": [[0.5, 0.5, 0.2, 0.1], [0.25, 0.75, 0.5, 0.5]],
                                 "box_coding": {"scales": [10.0, 10.0, 5.0, 5.0]},
                                 "score_threshold": 0.01, "nms_iou": 0.5, "max_detections": 100}"""
    }
}
