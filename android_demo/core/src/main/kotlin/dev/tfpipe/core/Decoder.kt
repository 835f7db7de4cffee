package dev.tfpipe.core

/** One image's result, in the original image's pixels (the letterbox undone). */
sealed class Prediction {
    /** The `topK` classes, highest probability first. */
    data class Classes(val top: List<Pair<String, Float>>) : Prediction()

    /** Boxes x1 y1 x2 y2, highest score first. */
    data class Boxes(val detections: List<Detection>, val classes: List<String>) : Prediction() {
        fun label(d: Detection) = classes[d.classIndex]
    }

    /** The class index of every pixel, row-major [height, width]. */
    class Mask(val height: Int, val width: Int, val classMap: IntArray) : Prediction()

    /** Detections, each with its mask (row-major [height, width]) and keypoints ([K * 3] x, y, score, or none). */
    class Instances(val detections: List<Detection>, val classes: List<String>, val height: Int, val width: Int,
                    val masks: List<BooleanArray>, val keypoints: List<FloatArray>?, val keypointNames: List<String>) : Prediction() {
        fun label(d: Detection) = classes[d.classIndex]
    }
}

/**
 * A bundle's outputs -> the prediction, as tfpipe.runtime.bundle.Bundle.decode does (the golden
 * test holds the two to the same classes, boxes and masks): top-k probabilities; detections from
 * TFLite_Detection_PostProcess's outputs or, for a raw bundle, decoding on the anchors and
 * class-wise NMS; a class map from `class_map` or the argmax of the probabilities.
 *
 * `outputs` are the batch-1 tensors by name, already dequantized (see [Quant.dequantize]).
 */
class Decoder(val task: Task, val classes: List<String>, val preprocess: PreprocessSpec, val detection: DetectionSpec?,
              val instance: InstanceSpec? = null) {
    constructor(bundle: BundleSpec) : this(bundle.task, bundle.classes, bundle.preprocess, bundle.detection, bundle.instance)

    fun decode(outputs: Map<String, FloatArray>, imageHeight: Int, imageWidth: Int, topK: Int = 3,
               minScore: Float = 0f): Prediction = when (task) {
        Task.CLASSIFICATION -> {
            val p = output(outputs, "probabilities")
            val order = p.indices.sortedByDescending { p[it] }.take(topK)
            Prediction.Classes(order.map { classes[it] to p[it] })
        }
        Task.DETECTION -> Prediction.Boxes(detect(outputs, imageHeight, imageWidth).map { it.second }.filter { it.score >= minScore }, classes)
        Task.SEGMENTATION -> mask(outputs, imageHeight, imageWidth)
        Task.INSTANCE_SEGMENTATION -> instances(outputs, imageHeight, imageWidth, minScore)
    }

    /** As tfpipe.runtime.bundle.Contract.instances: each kept row's mask pasted into its box in the image, its keypoints. */
    private fun instances(outputs: Map<String, FloatArray>, imageHeight: Int, imageWidth: Int, minScore: Float): Prediction.Instances {
        val kept = detect(outputs, imageHeight, imageWidth).filter { it.second.score >= minScore }
        val rows = detection!!.count
        val masks = output(outputs, "instance_masks")
        val size = Math.round(Math.sqrt((masks.size / rows).toDouble())).toInt()
        val threshold = instance?.maskThreshold ?: InstanceDecoding.MASK_THRESHOLD
        val pasted = kept.map { (row, d) ->
            InstanceDecoding.paste(masks, row, size, size, floatArrayOf(d.x1, d.y1, d.x2, d.y2), imageHeight, imageWidth, threshold)
        }
        val heatmaps = outputs["keypoint_heatmaps"]
        val names = instance?.keypoints.orEmpty()
        val points = heatmaps?.let { h ->
            val count = h.size / (rows * size * size)
            kept.map { (row, d) -> InstanceDecoding.keypoints(h, row, size, count, floatArrayOf(d.x1, d.y1, d.x2, d.y2)) }
        }
        return Prediction.Instances(kept.map { it.second }, classes, imageHeight, imageWidth, pasted, points, names)
    }

    private fun output(outputs: Map<String, FloatArray>, name: String): FloatArray =
        outputs[name] ?: throw BundleError("the model has no output '$name' (it has: ${outputs.keys.joinToString()})")

    /** The detections with the output row each came from (-1 for TFLite_Detection_PostProcess's, which has no rows). */
    private fun detect(outputs: Map<String, FloatArray>, imageHeight: Int, imageWidth: Int): List<Pair<Int, Detection>> {
        val h = preprocess.height
        val w = preprocess.width
        val p = Preprocess.placement(imageHeight, imageWidth, preprocess)
        val sx = imageWidth.toDouble() / p.width
        val sy = imageHeight.toDouble() / p.height
        // corners (ymin, xmin, ymax, xmax) normalised to the input -> x1 y1 x2 y2 in the image's pixels
        fun inImage(corners: FloatArray, row: Int, classIndex: Int, score: Float): Detection {
            val b = Detections.toPixels(corners, row, h, w)
            return Detection(((b[0] - p.left) * sx).toFloat(), ((b[1] - p.top) * sy).toFloat(),
                ((b[2] - p.left) * sx).toFloat(), ((b[3] - p.top) * sy).toFloat(), classIndex, score)
        }
        if ("num_detections" in outputs) {  // TFLite_Detection_PostProcess: already NMS'd, highest first
            val boxes = output(outputs, "detection_boxes")
            val labels = output(outputs, "detection_classes")
            val scores = output(outputs, "detection_scores")
            return (0 until output(outputs, "num_detections")[0].toInt()).map { -1 to inImage(boxes, it, labels[it].toInt(), scores[it]) }
        }
        val d = detection ?: throw BundleError("model.json: a raw detection bundle needs the 'detection' section (anchors)")
        val encodings = output(outputs, "box_encodings")
        val scores = output(outputs, "class_scores")
        if (encodings.size != d.anchors.size) {
            throw BundleError("box_encodings has ${encodings.size / 4} rows but model.json has ${d.count} anchors")
        }
        val corners = Detections.decode(encodings, d.anchors, d.scales)
        return Detections.nms(corners, scores, scores.size / d.count, d.nmsIou, d.scoreThreshold, d.maxDetections,
            d.maxDetections).map { it.index to inImage(corners, it.index, it.classIndex, it.score) }
    }

    private fun mask(outputs: Map<String, FloatArray>, imageHeight: Int, imageWidth: Int): Prediction.Mask {
        val h = preprocess.height
        val w = preprocess.width
        val atInput = outputs["class_map"]?.let { m -> IntArray(m.size) { m[it].toInt() } } ?: run {
            val p = output(outputs, "probabilities")
            val c = p.size / (h * w)
            IntArray(h * w) { i ->  // argmax, the first of equal maxima (NumPy's)
                var best = 0
                for (k in 1 until c) if (p[i * c + k] > p[i * c + best]) best = k
                best
            }
        }
        val place = Preprocess.placement(imageHeight, imageWidth, preprocess)
        // nearest neighbour from the letterboxed region back to the image's size
        val rows = IntArray(imageHeight) { minOf(((it + 0.5) * place.height / imageHeight).toInt(), place.height - 1) }
        val cols = IntArray(imageWidth) { minOf(((it + 0.5) * place.width / imageWidth).toInt(), place.width - 1) }
        val out = IntArray(imageHeight * imageWidth)
        for (i in 0 until imageHeight) {
            val from = (rows[i] + place.top) * w + place.left
            for (j in 0 until imageWidth) out[i * imageWidth + j] = atInput[from + cols[j]]
        }
        return Prediction.Mask(imageHeight, imageWidth, out)
    }
}

/** Class colours for a mask overlay: PASCAL VOC's palette (class 0, the background, is left clear). */
object Palette {
    /** 0xRRGGBB of class k, VOC's bit-interleaved colour map (1 -> 128,0,0; 2 -> 0,128,0; 15 -> 192,128,128). */
    fun rgb(k: Int): Int {
        var r = 0
        var g = 0
        var b = 0
        var c = k
        for (shift in 7 downTo 0) {
            r = r or ((c and 1) shl shift)
            g = g or (((c shr 1) and 1) shl shift)
            b = b or (((c shr 2) and 1) shl shift)
            c = c shr 3
        }
        return (r shl 16) or (g shl 8) or b
    }

    /** The mask as ARGB pixels (Android's Bitmap.setPixels order): each class's colour at `alpha`, background clear. */
    fun colorize(mask: Prediction.Mask, alpha: Int = 128): IntArray {
        require(alpha in 0..255) { "alpha is 0..255, got $alpha" }
        return IntArray(mask.classMap.size) { i ->
            val k = mask.classMap[i]
            if (k == 0) 0 else (alpha shl 24) or rgb(k)
        }
    }
}
