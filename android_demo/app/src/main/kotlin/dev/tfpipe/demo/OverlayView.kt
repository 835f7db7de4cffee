package dev.tfpipe.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Paint
import android.graphics.RectF
import android.util.AttributeSet
import android.view.View
import dev.tfpipe.core.Palette
import dev.tfpipe.core.Prediction
import kotlin.math.max

/**
 * Draws a prediction over the camera preview: boxes with their label and score, or the mask
 * blended in the classes' colours (classification's top-k is text, under the preview). The frame
 * is mapped onto the view as PreviewView's default FILL_CENTER shows it: scaled to cover, centred.
 */
class OverlayView(context: Context, attrs: AttributeSet? = null) : View(context, attrs) {
    private var prediction: Prediction? = null
    private var frameWidth = 1
    private var frameHeight = 1
    private var mask: Bitmap? = null

    private val boxPaint = Paint().apply { style = Paint.Style.STROKE; strokeWidth = 4f; isAntiAlias = true }
    private val labelBackground = Paint().apply { style = Paint.Style.FILL }
    private val labelText = Paint().apply { color = Color.WHITE; textSize = 36f; isAntiAlias = true }
    private val maskPaint = Paint().apply { isFilterBitmap = false }  // class edges stay sharp

    /** Shows `p` for a frame of `width` x `height` (the frame the model saw, upright). */
    fun show(p: Prediction?, width: Int, height: Int) {
        prediction = p
        frameWidth = width
        frameHeight = height
        mask?.recycle()
        mask = when (p) {
            is Prediction.Mask -> Bitmap.createBitmap(Palette.colorize(p, alpha = 120), p.width, p.height, Bitmap.Config.ARGB_8888)
            is Prediction.Instances -> {  // each instance's pixels in its class's colour, later (lower-scoring) ones underneath
                val pixels = IntArray(p.width * p.height)
                for (k in p.detections.indices.reversed()) {
                    val colour = (120 shl 24) or Palette.rgb(p.detections[k].classIndex + 1)
                    p.masks[k].forEachIndexed { i, inside -> if (inside) pixels[i] = colour }
                }
                Bitmap.createBitmap(pixels, p.width, p.height, Bitmap.Config.ARGB_8888)
            }
            else -> null
        }
        invalidate()
    }

    override fun onDraw(canvas: Canvas) {
        super.onDraw(canvas)
        val scale = max(width.toFloat() / frameWidth, height.toFloat() / frameHeight)
        val dx = (width - frameWidth * scale) / 2
        val dy = (height - frameHeight * scale) / 2
        val p = prediction
        if (p is Prediction.Instances) mask?.let {
            canvas.drawBitmap(it, null, RectF(dx, dy, dx + frameWidth * scale, dy + frameHeight * scale), maskPaint)
        }
        val boxes = when (p) {
            is Prediction.Boxes -> p.detections.map { it to p.label(it) }
            is Prediction.Instances -> p.detections.map { it to p.label(it) }
            else -> emptyList()
        }
        for ((d, label) in boxes) {
            val colour = Color.BLACK or Palette.rgb(d.classIndex + 1)  // the class's mask colour, opaque
            boxPaint.color = colour
            labelBackground.color = colour
            val box = RectF(dx + d.x1 * scale, dy + d.y1 * scale, dx + d.x2 * scale, dy + d.y2 * scale)
            canvas.drawRect(box, boxPaint)
            val text = "$label ${"%.2f".format(d.score)}"
            val top = max(0f, box.top - labelText.textSize - 8)
            canvas.drawRect(box.left, top, box.left + labelText.measureText(text) + 12, top + labelText.textSize + 8, labelBackground)
            canvas.drawText(text, box.left + 6, top + labelText.textSize, labelText)
        }
        if (p is Prediction.Mask) mask?.let {
            canvas.drawBitmap(it, null, RectF(dx, dy, dx + frameWidth * scale, dy + frameHeight * scale), maskPaint)
        }
    }
}
