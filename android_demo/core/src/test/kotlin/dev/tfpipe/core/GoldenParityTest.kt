package dev.tfpipe.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Test
import java.io.File
import kotlin.math.abs

/**
 * Golden parity: for every golden file (`python -m tfpipe.golden`) named in the system
 * property `tfpipe.golden` (paths joined by the platform's path separator), the core must turn each
 * sample's decoded pixels into the very input bytes Python fed the model, and its raw outputs into
 * the same prediction: the same top-k classes; the same detections in the same order (boxes within
 * 1e-4 pixel, same classes, scores within 1e-6); the same class map, pixel for pixel.
 *
 * `make android-core-test GOLDEN=a.json:b.json` passes the property. The Python suite writes the
 * files from its trained classification, detection (raw int8 outputs, so this core's decoding and
 * NMS run) and segmentation bundles and calls that target: tests/integration/test_golden.py,
 * test_detection_run.py and test_segmentation_run.py.
 */
class GoldenParityTest {
    private fun array(f: Fields): DoubleArray = f.doubles("data")

    @Test
    fun theCoreDecodesExactlyAsPythonDoes() {
        val files = System.getProperty("tfpipe.golden").orEmpty().split(File.pathSeparator).filter { it.isNotEmpty() }
        assumeTrue("no golden files given (make android-core-test GOLDEN=...)", files.isNotEmpty())
        for (path in files) check(File(path))
    }

    /** Each model.json named in `tfpipe.bundles` (as the converter wrote it) parses, models and all. */
    @Test
    fun theConvertersModelJsonParses() {
        val files = System.getProperty("tfpipe.bundles").orEmpty().split(File.pathSeparator).filter { it.isNotEmpty() }
        assumeTrue("no bundles given (make android-core-test BUNDLES=...)", files.isNotEmpty())
        for (path in files) {
            val spec = BundleSpec.parse(File(path).readText(), path)
            val entry = spec.model(spec.preferredModel())
            assertTrue("$path: an image input", entry.input.shape.size == 4 && entry.input.shape[1] == spec.preprocess.height)
            assertTrue("$path: outputs", entry.outputs.isNotEmpty())
            if (spec.task == Task.DETECTION) assertTrue("$path: anchors", (spec.detection?.count ?: 0) > 0)
            println("bundle: $path: ${spec.task.key}, models ${spec.models.keys.joinToString()}, runs ${spec.preferredModel()} " +
                "(${entry.input.dtype.key} input ${entry.input.shape.joinToString("x")}, outputs ${entry.outputs.keys.sorted().joinToString()})")
        }
    }

    private fun check(file: File) {
        val golden = Fields.of(Json.parse(file.readText(), file.path), file.path)
        assertEquals("tfpipe-golden/1", golden.string("format"))
        val task = Task.entries.first { it.key == golden.string("task") }
        val preprocess = PreprocessSpec.parse(golden.obj("preprocess"))
        val detection = if (task.detects && golden.obj("detection").has("anchors")) DetectionSpec.parse(golden.obj("detection")) else null
        val instance = if (task == Task.INSTANCE_SEGMENTATION) InstanceSpec.parse(golden, "instance") else null
        val decoder = Decoder(task, golden.strings("classes"), preprocess, detection, instance)
        var maskPixels = 0L
        var maskDiffering = 0L
        val topK = golden.int("top_k")
        var compared = 0
        val samples = golden.list("samples")
        for ((i, s) in samples.withIndex()) {
            val sample = Fields.of(s, "${file.name} samples[$i]")
            val name = sample.string("name")
            // 1. preprocessing and input quantization: the same bytes
            val pixels = sample.obj("pixels")
            val shape = pixels.ints("shape")
            val image = Image(shape[0], shape[1], shape[2], array(pixels).map { it.toInt() }.toIntArray())
            val x = Preprocess.apply(image, preprocess)
            val input = sample.obj("input")
            val spec = TensorSpec.parse(input.string("name"), input)
            val expectedInput = array(input)
            if (spec.dtype.integer) {
                assertArrayEquals("$name: input bytes", expectedInput.map { it.toInt() }.toIntArray(), Quant.quantize(x, spec))
            } else {
                assertArrayEquals("$name: input", expectedInput.map { it.toFloat() }.toFloatArray(), x, 0f)
            }
            // 2. raw outputs -> prediction
            val raw = sample.obj("outputs")
            val outputs = raw.keys().associateWith { k ->
                val o = raw.obj(k)
                val values = array(o)
                val t = TensorSpec.parse(k, o)
                if (t.dtype.integer) Quant.dequantize(values.map { it.toInt() }.toIntArray(), t) else FloatArray(values.size) { values[it].toFloat() }
            }
            val prediction = decoder.decode(outputs, shape[0], shape[1], topK)
            val expected = sample.obj("expected")
            when (prediction) {
                is Prediction.Classes -> {
                    val top = expected.list("top").map { it as List<*> }
                    assertEquals("$name: classes", top.map { it[0] as String }, prediction.top.map { it.first })
                    for ((e, got) in top.zip(prediction.top)) assertEquals("$name: score", e[1] as Double, got.second.toDouble(), 1e-6)
                    compared += prediction.top.size
                }
                is Prediction.Boxes -> {
                    val boxes = expected.list("boxes").map { (it as List<*>).map { v -> v as Double } }
                    val classes = expected.strings("classes")
                    val scores = expected.doubles("scores")
                    assertEquals("$name: number of detections", boxes.size, prediction.detections.size)
                    for ((k, d) in prediction.detections.withIndex()) {
                        assertEquals("$name: detection $k class", classes[k], prediction.label(d))
                        assertEquals("$name: detection $k score", scores[k], d.score.toDouble(), 1e-6)
                        val got = listOf(d.x1, d.y1, d.x2, d.y2)
                        for (c in 0 until 4) {
                            assertTrue("$name: detection $k box ${boxes[k]} vs $got", abs(boxes[k][c] - got[c]) <= 1e-4)
                        }
                    }
                    compared += prediction.detections.size
                }
                is Prediction.Instances -> {
                    val boxes = expected.list("boxes").map { (it as List<*>).map { v -> v as Double } }
                    val classes = expected.strings("classes")
                    val scores = expected.doubles("scores")
                    assertEquals("$name: number of instances", boxes.size, prediction.detections.size)
                    val masks = expected.obj("masks")
                    val pixels = array(masks)
                    val area = prediction.height * prediction.width
                    for ((k, d) in prediction.detections.withIndex()) {
                        assertEquals("$name: instance $k class", classes[k], prediction.label(d))
                        assertEquals("$name: instance $k score", scores[k], d.score.toDouble(), 1e-6)
                        val got = listOf(d.x1, d.y1, d.x2, d.y2)
                        for (c in 0 until 4) assertTrue("$name: instance $k box ${boxes[k]} vs $got", abs(boxes[k][c] - got[c]) <= 1e-4)
                        for (i in 0 until area) if ((pixels[k * area + i] > 0.5) != prediction.masks[k][i]) maskDiffering++
                        maskPixels += area
                        prediction.keypoints?.let { points ->
                            val want = (expected.list("keypoints")[k] as List<*>).map { (it as List<*>).map { v -> v as Double } }
                            for ((j, w) in want.withIndex()) {
                                assertEquals("$name: instance $k keypoint $j x", w[0], points[k][3 * j].toDouble(), 1e-4)
                                assertEquals("$name: instance $k keypoint $j y", w[1], points[k][3 * j + 1].toDouble(), 1e-4)
                                assertEquals("$name: instance $k keypoint $j score", w[2], points[k][3 * j + 2].toDouble(), 1e-5)
                            }
                        }
                    }
                    compared += prediction.detections.size
                }
                is Prediction.Mask -> {
                    val map = expected.obj("class_map")
                    assertArrayEquals("$name: class map shape", map.ints("shape"), intArrayOf(prediction.height, prediction.width))
                    assertArrayEquals("$name: class map", array(map).map { it.toInt() }.toIntArray(), prediction.classMap)
                    compared += prediction.classMap.size
                }
            }
        }
        assertTrue("${file.name}: nothing was compared", samples.isNotEmpty() && compared > 0)
        // pasted masks: at most 0.1 % of the pixels may differ (a sample exactly at the threshold may round either way)
        assertTrue("${file.name}: $maskDiffering of $maskPixels mask pixels differ", maskDiffering * 1000 <= maskPixels)
        val unit = mapOf(Task.CLASSIFICATION to "ranked classes", Task.DETECTION to "detections", Task.SEGMENTATION to "mask pixels",
            Task.INSTANCE_SEGMENTATION to "instances (boxes, keypoints)")
        val masks = if (maskPixels > 0) ", $maskDiffering of $maskPixels pasted mask pixels differ" else ""
        println("golden parity: ${file.name}: ${task.key}, ${samples.size} samples, $compared ${unit[task]} identical to Python's$masks")
    }
}
