package dev.tfpipe.core

import kotlin.math.ceil
import kotlin.math.floor
import kotlin.math.max
import kotlin.math.min

/** An image as the camera or a file gives it: pixels 0..255, row-major [height, width, channels]. */
class Image(val height: Int, val width: Int, val channels: Int, val pixels: IntArray) {
    init {
        require(channels == 1 || channels == 3) { "an image has 1 or 3 channels, got $channels" }
        require(pixels.size == height * width * channels) {
            "an image of $height x $width x $channels needs ${height * width * channels} values, got ${pixels.size}"
        }
    }

    companion object {
        /** Android's Bitmap.getPixels order (0xAARRGGBB per pixel, row-major) -> RGB. */
        fun fromArgb(argb: IntArray, width: Int, height: Int): Image {
            val out = IntArray(width * height * 3)
            for (i in argb.indices) {
                val p = argb[i]
                out[3 * i] = (p shr 16) and 0xFF
                out[3 * i + 1] = (p shr 8) and 0xFF
                out[3 * i + 2] = p and 0xFF
            }
            return Image(height, width, 3, out)
        }
    }
}

/** Where an image lands in the model input: [top, top + height) x [left, left + width). */
data class Placement(val height: Int, val width: Int, val top: Int, val left: Int)

/**
 * The device's side of THE preprocessing function (tfpipe/data/preprocess.py and its NumPy twin
 * tfpipe/runtime/preprocess.py), operation for operation in float32 so the quantized input is the
 * same bytes as Python's (the golden test checks it):
 *  1. channels: grayscale repeated to RGB, or RGB to grayscale with ITU-R 601 luma; `bgr` reverses RGB;
 *  2. bilinear resize with half-pixel centres (TensorFlow's), `stretch` or `letterbox` (centred on a
 *     pad_value canvas, the odd pixel bottom/right);
 *  3. pixel * scale + offset.
 */
object Preprocess {
    private val LUMA = floatArrayOf(0.299f, 0.587f, 0.114f)

    /** Python's round(): half to even. */
    private fun pyRound(x: Double): Int = Math.rint(x).toInt()

    fun letterbox(h: Int, w: Int, height: Int, width: Int): Placement {
        val s = min(height.toDouble() / h, width.toDouble() / w)
        val newH = min(height, pyRound(h * s))
        val newW = min(width, pyRound(w * s))
        return Placement(newH, newW, (height - newH) / 2, (width - newW) / 2)
    }

    /** Where an image of h x w sits in the model input, for either resize policy. */
    fun placement(h: Int, w: Int, spec: PreprocessSpec): Placement =
        if (spec.resize == Resize.STRETCH || (h == spec.height && w == spec.width)) Placement(spec.height, spec.width, 0, 0)
        else letterbox(h, w, spec.height, spec.width)

    /** The model input [H * W * C] float32 of one image. */
    fun apply(image: Image, spec: PreprocessSpec): FloatArray {
        var c = image.channels
        var x = FloatArray(image.pixels.size) { image.pixels[it].toFloat() }
        if (spec.channels == 3) {
            if (c == 1) {
                x = FloatArray(x.size * 3) { x[it / 3] }
                c = 3
            }
            if (spec.bgr) {
                val rgb = x
                x = FloatArray(rgb.size) { rgb[it - it % 3 + 2 - it % 3] }
            }
        } else if (c == 3) {
            val rgb = x
            // numpy's float32 sum over 3 values: left to right
            x = FloatArray(rgb.size / 3) { rgb[3 * it] * LUMA[0] + rgb[3 * it + 1] * LUMA[1] + rgb[3 * it + 2] * LUMA[2] }
            c = 1
        }
        val height = spec.height
        val width = spec.width
        if (image.height != height || image.width != width) {
            val p = placement(image.height, image.width, spec)
            val resized = resizeBilinear(x, image.height, image.width, c, p.height, p.width)
            x = if (p.height == height && p.width == width) resized else {
                val canvas = FloatArray(height * width * c) { spec.padValue }
                for (r in 0 until p.height) {
                    System.arraycopy(resized, r * p.width * c, canvas, ((r + p.top) * width + p.left) * c, p.width * c)
                }
                canvas
            }
        }
        val scale = spec.scale
        val offset = spec.offset
        return FloatArray(x.size) { x[it] * scale + offset }
    }

    private class Axis(inSize: Int, outSize: Int) {
        val lower = IntArray(outSize)
        val upper = IntArray(outSize)
        val weight = FloatArray(outSize)

        init {
            val scale = inSize.toDouble() / outSize
            for (i in 0 until outSize) {
                val position = (i + 0.5) * scale - 0.5
                val f = floor(position)
                lower[i] = max(f, 0.0).toInt()
                upper[i] = min(ceil(position), (inSize - 1).toDouble()).toInt()
                weight[i] = (position - f).toFloat()
            }
        }
    }

    /** float32 [h, w, c] -> [height, width, c] as tf.image.resize(method='bilinear'), half-pixel centres. */
    fun resizeBilinear(x: FloatArray, h: Int, w: Int, c: Int, height: Int, width: Int): FloatArray {
        val ys = Axis(h, height)
        val xs = Axis(w, width)
        val out = FloatArray(height * width * c)
        for (i in 0 until height) {
            val top = ys.lower[i] * w
            val bottom = ys.upper[i] * w
            val wy = ys.weight[i]
            for (j in 0 until width) {
                val wx = xs.weight[j]
                for (k in 0 until c) {
                    val tl = x[(top + xs.lower[j]) * c + k]
                    val tr = x[(top + xs.upper[j]) * c + k]
                    val bl = x[(bottom + xs.lower[j]) * c + k]
                    val br = x[(bottom + xs.upper[j]) * c + k]
                    val upper = tl + (tr - tl) * wx
                    val lower = bl + (br - bl) * wx
                    out[(i * width + j) * c + k] = upper + (lower - upper) * wy
                }
            }
        }
        return out
    }
}

/** Affine (de)quantization, per tensor: real = scale * (q - zeroPoint), as tfpipe.runtime.quant. */
object Quant {
    /** Round half to even (TFLite's reference QUANTIZE) and saturate to the dtype. */
    fun quantize(x: FloatArray, spec: TensorSpec): IntArray {
        require(spec.dtype.integer) { "${spec.name} is ${spec.dtype.key}, not an integer tensor" }
        return IntArray(x.size) {
            val q = Math.rint(x[it].toDouble() / spec.scale) + spec.zeroPoint
            q.coerceIn(spec.dtype.min.toDouble(), spec.dtype.max.toDouble()).toInt()
        }
    }

    fun dequantize(q: IntArray, spec: TensorSpec): FloatArray =
        if (!spec.quantized) FloatArray(q.size) { q[it].toFloat() }
        else FloatArray(q.size) { ((q[it].toFloat() - spec.zeroPoint) * spec.scale.toFloat()) }
}
