package dev.tfpipe.core

import java.nio.ByteBuffer
import java.nio.ByteOrder

/** Model tensors <-> the interpreter's buffers (LiteRT reads and writes native-order ByteBuffers). */
object Tensors {
    /** The model input as the interpreter wants it: float32, or quantized with the input's scale and zero point. */
    fun input(x: FloatArray, spec: TensorSpec): ByteBuffer {
        require(x.size == spec.size) { "${spec.name} takes ${spec.size} values (${spec.shape.joinToString("x")}), got ${x.size}" }
        val buffer = ByteBuffer.allocateDirect(spec.size * spec.dtype.bytes).order(ByteOrder.nativeOrder())
        when (spec.dtype) {
            DType.FLOAT32 -> x.forEach { buffer.putFloat(it) }
            DType.UINT8, DType.INT8 -> Quant.quantize(x, spec).forEach { buffer.put(it.toByte()) }
            DType.INT16 -> Quant.quantize(x, spec).forEach { buffer.putShort(it.toShort()) }
            DType.INT32 -> Quant.quantize(x, spec).forEach { buffer.putInt(it) }
        }
        return buffer.rewind() as ByteBuffer
    }

    /** An empty output buffer for `spec`. */
    fun output(spec: TensorSpec): ByteBuffer =
        ByteBuffer.allocateDirect(spec.size * spec.dtype.bytes).order(ByteOrder.nativeOrder())

    /** The raw integers (or floats) of an output buffer as the interpreter left them. */
    fun raw(buffer: ByteBuffer, spec: TensorSpec): IntArray {
        val b = buffer.duplicate().order(ByteOrder.nativeOrder())
        b.rewind()
        return IntArray(spec.size) {
            when (spec.dtype) {
                DType.UINT8 -> b.get().toInt() and 0xFF
                DType.INT8 -> b.get().toInt()
                DType.INT16 -> b.getShort().toInt()
                DType.INT32 -> b.getInt()
                DType.FLOAT32 -> throw IllegalArgumentException("${spec.name} is float32: read it with read()")
            }
        }
    }

    /** An output buffer -> real values (dequantized with the output's own scale and zero point). */
    fun read(buffer: ByteBuffer, spec: TensorSpec): FloatArray {
        if (spec.dtype == DType.FLOAT32) {
            val b = buffer.duplicate().order(ByteOrder.nativeOrder())
            b.rewind()
            return FloatArray(spec.size) { b.getFloat() }
        }
        return Quant.dequantize(raw(buffer, spec), spec)
    }
}

enum class Delegate(val label: String) { CPU("CPU (XNNPACK)"), GPU("GPU"), NNAPI("NNAPI") }

/** What runs the model, on which delegate, and what the screen should say about how it got there. */
data class Opened<T>(val engine: T, val delegate: Delegate, val notice: String?)

/**
 * The delegate-fallback policy: try the delegate the user picked; if it is unavailable on this
 * device or rejects the model (the delegate's constructor or the interpreter's throws), run on the
 * CPU instead and say why, so the screen never shows a CPU latency under a GPU label.
 */
object DelegatePolicy {
    /** NNAPI came with Android 8.1 (API 27); signed int8 tensors need Android 11 (API 30). */
    fun unavailable(delegate: Delegate, sdk: Int, signedInt8: Boolean): String? = when {
        delegate != Delegate.NNAPI -> null
        sdk < 27 -> "NNAPI needs Android 8.1 (API 27), this device has API $sdk"
        signedInt8 && sdk < 30 -> "NNAPI runs signed int8 models from Android 11 (API 30), this device has API $sdk"
        else -> null
    }

    /** The thread count the CPU gets: at least 1, at most the device's cores. */
    fun threads(requested: Int, cores: Int): Int = requested.coerceIn(1, maxOf(1, cores))

    fun <T> open(requested: Delegate, modelName: String, threads: Int, sdk: Int, signedInt8: Boolean,
                 open: (Delegate) -> T): Opened<T> {
        val onCpu = "running on the ${Delegate.CPU.label} with $threads thread${if (threads == 1) "" else "s"}"
        if (requested == Delegate.CPU) return Opened(open(Delegate.CPU), Delegate.CPU, null)
        unavailable(requested, sdk, signedInt8)?.let { return Opened(open(Delegate.CPU), Delegate.CPU, "$it; $onCpu") }
        return try {
            Opened(open(requested), requested, null)
        } catch (e: Exception) {  // the delegates throw IllegalArgumentException / IllegalStateException / RuntimeException
            val reason = (e.message ?: e.javaClass.simpleName).lineSequence().first().take(160)
            Opened(open(Delegate.CPU), Delegate.CPU, "${requested.label} rejected $modelName ($reason); $onCpu")
        }
    }
}

/** Latency on screen: the mean of the last `window` inferences, in ms and frames per second. */
class LatencyMeter(private val window: Int = 30) {
    private val recent = ArrayDeque<Double>()

    init {
        require(window >= 1) { "window is at least 1, got $window" }
    }

    fun add(ms: Double) {
        require(ms >= 0) { "a latency is not negative, got $ms" }
        recent.addLast(ms)
        if (recent.size > window) recent.removeFirst()
    }

    val meanMs: Double get() = if (recent.isEmpty()) 0.0 else recent.sum() / recent.size
    val fps: Double get() = if (meanMs == 0.0) 0.0 else 1000.0 / meanMs

    fun text(): String = if (recent.isEmpty()) "-" else String.format(java.util.Locale.ROOT, "%.1f ms  %.1f fps", meanMs, fps)
}
