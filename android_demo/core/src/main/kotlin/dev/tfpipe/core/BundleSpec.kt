package dev.tfpipe.core

/**
 * model.json (format tfpipe-bundle/1, written by `python -m tfpipe.convert`): what the app needs to
 * feed a bundle's model and read its outputs. Every field the app relies on is checked here, so a
 * wrong bundle fails at load with the file and field named, not at the first camera frame.
 */
data class BundleSpec(
    val task: Task,
    val classes: List<String>,
    val preprocess: PreprocessSpec,
    val models: Map<String, ModelEntry>,
    val detection: DetectionSpec?,
    val instance: InstanceSpec? = null,
) {
    /** The model the app runs: int8 when the bundle has one (what the Edge TPU and NNAPI want). */
    fun preferredModel(): String = listOf("int8", "int16x8", "fp16", "dynamic", "fp32").firstOrNull { it in models }
        ?: models.keys.first()

    fun model(name: String, source: String = "model.json"): ModelEntry =
        models[name] ?: throw BundleError("$source: no '$name' model (this bundle has: ${models.keys.joinToString()})")

    companion object {
        fun parse(text: String, source: String = "model.json"): BundleSpec {
            val root = Fields.of(Json.parse(text, source), source)
            val taskName = root.string("task")
            val task = Task.entries.firstOrNull { it.key == taskName }
                ?: root.wrong("task", Task.entries.joinToString(" or ") { it.key })
            val classes = root.strings("classes")
            if (classes.isEmpty()) root.wrong("classes", "at least one class")
            val models = root.obj("models").let { m -> m.keys().associateWith { ModelEntry.parse(m.obj(it)) } }
            if (models.isEmpty()) root.wrong("models", "at least one model")
            val detection = if (task.detects && root.has("detection")) DetectionSpec.parse(root.obj("detection")) else null
            val instance = if (task == Task.INSTANCE_SEGMENTATION) InstanceSpec.parse(root, "instance") else null
            return BundleSpec(task, classes, PreprocessSpec.parse(root.obj("preprocess")), models, detection, instance)
        }
    }
}

enum class Task(val key: String, val detects: Boolean = false) {
    CLASSIFICATION("classification"), DETECTION("detection", true), SEGMENTATION("segmentation"),
    INSTANCE_SEGMENTATION("instance_segmentation", true),
}

/** model.json's `instance`: the mask threshold and the keypoints' names (tfpipe.runtime.instance). */
data class InstanceSpec(val maskThreshold: Float, val keypoints: List<String>) {
    companion object {
        fun parse(root: Fields, key: String): InstanceSpec {
            if (!root.has(key)) return InstanceSpec(InstanceDecoding.MASK_THRESHOLD, emptyList())
            val f = root.obj(key)
            return InstanceSpec(if (f.has("mask_threshold")) f.double("mask_threshold").toFloat() else InstanceDecoding.MASK_THRESHOLD,
                if (f.has("keypoints")) f.strings("keypoints") else emptyList())
        }
    }
}

/** THE preprocessing of tfpipe/data/preprocess.py, as model.json's `preprocess` states it. */
data class PreprocessSpec(
    val height: Int,
    val width: Int,
    val channels: Int,
    val resize: Resize,
    val scale: Float,
    val offset: Float,
    val bgr: Boolean,
    val padValue: Float,
) {
    companion object {
        fun parse(f: Fields): PreprocessSpec {
            val channels = f.int("channels")
            if (channels != 1 && channels != 3) f.wrong("channels", "1 or 3")
            val resize = if (f.has("resize")) f.string("resize") else "letterbox"
            val order = if (f.has("channel_order")) f.string("channel_order") else "rgb"
            if (order != "rgb" && order != "bgr") f.wrong("channel_order", "rgb or bgr")
            val height = f.int("height")
            val width = f.int("width")
            if (height < 1) f.wrong("height", "a positive integer")
            if (width < 1) f.wrong("width", "a positive integer")
            return PreprocessSpec(
                height, width, channels,
                Resize.entries.firstOrNull { it.key == resize } ?: f.wrong("resize", "letterbox or stretch"),
                f.double("scale").toFloat(), f.double("offset").toFloat(), order == "bgr",
                if (f.has("pad_value")) f.double("pad_value").toFloat() else 0f,
            )
        }
    }
}

enum class Resize(val key: String) { LETTERBOX("letterbox"), STRETCH("stretch") }

/** One tensor of a model: its dtype and, for an integer tensor, real = scale * (q - zeroPoint). */
data class TensorSpec(val name: String, val shape: IntArray, val dtype: DType, val scale: Double, val zeroPoint: Int) {
    val size: Int get() = shape.fold(1) { a, b -> a * b }
    val quantized: Boolean get() = dtype.integer && scale != 0.0

    override fun equals(other: Any?) = other is TensorSpec && name == other.name && shape.contentEquals(other.shape) &&
        dtype == other.dtype && scale == other.scale && zeroPoint == other.zeroPoint

    override fun hashCode() = name.hashCode() * 31 + shape.contentHashCode()

    companion object {
        fun parse(name: String, f: Fields): TensorSpec {
            val dtypeName = f.string("dtype")
            val dtype = DType.entries.firstOrNull { it.key == dtypeName }
                ?: f.wrong("dtype", DType.entries.joinToString { it.key })
            return TensorSpec(name, f.ints("shape"), dtype, f.double("scale"), f.int("zero_point"))
        }
    }
}

enum class DType(val key: String, val bytes: Int, val integer: Boolean, val min: Int, val max: Int) {
    FLOAT32("float32", 4, false, 0, 0),
    UINT8("uint8", 1, true, 0, 255),
    INT8("int8", 1, true, -128, 127),
    INT16("int16", 2, true, -32768, 32767),
    INT32("int32", 4, true, Int.MIN_VALUE, Int.MAX_VALUE),
}

data class ModelEntry(val file: String, val quantize: String, val inputs: List<TensorSpec>, val outputs: Map<String, TensorSpec>) {
    val input: TensorSpec get() = inputs.single()

    companion object {
        fun parse(f: Fields): ModelEntry {
            val ins = f.obj("inputs")
            val outs = f.obj("outputs")
            val inputs = ins.keys().map { TensorSpec.parse(it, ins.obj(it)) }
            if (inputs.size != 1) f.wrong("inputs", "exactly one input (an image)")
            return ModelEntry(f.string("file"), f.string("quantize"), inputs,
                outs.keys().associateWith { TensorSpec.parse(it, outs.obj(it)) })
        }
    }
}

/**
 * model.json's `detection`: the anchors (cy, cx, h, w normalised, one per row of a raw model's
 * outputs) and the thresholds of TFLite_Detection_PostProcess, which a raw bundle's host NMS uses.
 */
class DetectionSpec(val anchors: FloatArray, val scales: FloatArray, val scoreThreshold: Float, val nmsIou: Float,
                    val maxDetections: Int) {
    val count: Int get() = anchors.size / 4

    companion object {
        fun parse(f: Fields): DetectionSpec {
            val rows = f.list("anchors")
            val anchors = FloatArray(rows.size * 4)
            rows.forEachIndexed { i, row ->
                val values = row as? List<*>
                if (values == null || values.size != 4 || values.any { it !is Double }) f.wrong("anchors", "rows of 4 numbers (cy, cx, h, w)")
                for (k in 0 until 4) anchors[4 * i + k] = (values[k] as Double).toFloat()
            }
            val scales = if (f.has("box_coding")) f.obj("box_coding").doubles("scales").map { it.toFloat() }.toFloatArray()
            else Detections.SCALES
            if (scales.size != 4) f.wrong("box_coding", "4 scales (y, x, h, w)")
            return DetectionSpec(anchors, scales, f.double("score_threshold").toFloat(), f.double("nms_iou").toFloat(),
                f.int("max_detections"))
        }
    }
}
