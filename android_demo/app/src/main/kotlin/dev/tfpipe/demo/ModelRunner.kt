package dev.tfpipe.demo

import android.content.res.AssetManager
import android.graphics.Bitmap
import android.os.Build
import android.os.SystemClock
import dev.tfpipe.core.BundleError
import dev.tfpipe.core.BundleSpec
import dev.tfpipe.core.Decoder
import dev.tfpipe.core.Delegate
import dev.tfpipe.core.DelegatePolicy
import dev.tfpipe.core.Image
import dev.tfpipe.core.ModelEntry
import dev.tfpipe.core.Prediction
import dev.tfpipe.core.Preprocess
import dev.tfpipe.core.Task
import dev.tfpipe.core.Tensors
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import org.tensorflow.lite.nnapi.NnApiDelegate
import java.io.FileInputStream
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/**
 * The bundles the app ships: one folder per task under assets/ (classification/, detection/,
 * segmentation/), each holding model.json, its .tflite files and labels.txt, as
 * export/android/sync.py copies them from a run's export/ folder.
 */
object AssetBundles {
    fun available(assets: AssetManager): List<Task> =
        Task.entries.filter { task -> assets.list(task.key).orEmpty().contains("model.json") }
}

/** One frame's result and how long the interpreter took for it. */
class Timed(val prediction: Prediction, val inferenceMs: Double)

/**
 * A bundle's model running on LiteRT's Interpreter. Everything that must match Python (the
 * preprocessing, quantization, decoding, NMS and the fallback policy) is in the `core` module;
 * this class only moves bytes between a Bitmap, the interpreter and that core.
 */
class ModelRunner private constructor(
    val task: Task,
    val modelName: String,
    private val entry: ModelEntry,
    private val bundle: BundleSpec,
    private val interpreter: Interpreter,
    private val delegateHandle: AutoCloseable?,
    val delegate: Delegate,
    val threads: Int,
    /** Why the requested delegate is not the one in use, or null. */
    val notice: String?,
) : AutoCloseable {
    private val decoder = Decoder(bundle)

    fun run(bitmap: Bitmap, topK: Int = 3, minScore: Float = 0.3f): Timed {
        val argb = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(argb, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        val x = Preprocess.apply(Image.fromArgb(argb, bitmap.width, bitmap.height), bundle.preprocess)
        val inputs = mapOf<String, Any>(entry.input.name to Tensors.input(x, entry.input))
        val buffers = entry.outputs.mapValues { Tensors.output(it.value) }
        val start = SystemClock.elapsedRealtimeNanos()
        interpreter.runSignature(inputs, buffers)  // outputs by signature name, as model.json lists them
        val ms = (SystemClock.elapsedRealtimeNanos() - start) / 1e6
        val outputs = buffers.mapValues { (name, buffer) -> Tensors.read(buffer, entry.outputs.getValue(name)) }
        return Timed(decoder.decode(outputs, bitmap.height, bitmap.width, topK, minScore), ms)
    }

    fun describe(): String = "${task.key}: ${entry.file} on ${delegate.label}" +
        (if (delegate == Delegate.CPU) " x$threads" else "")

    override fun close() {
        interpreter.close()
        delegateHandle?.close()
    }

    companion object {
        /** Opens the bundle of `task` on `requested`, falling back to the CPU (and saying why) if it is refused. */
        fun open(assets: AssetManager, task: Task, requested: Delegate, requestedThreads: Int): ModelRunner {
            val folder = task.key
            val source = "assets/$folder/model.json"
            val bundle = BundleSpec.parse(assets.open("$folder/model.json").bufferedReader().use { it.readText() }, source)
            if (bundle.task != task) throw BundleError("$source: holds a ${bundle.task.key} bundle, expected ${task.key}")
            val name = bundle.preferredModel()
            val entry = bundle.model(name, source)
            val model = mapAsset(assets, "$folder/${entry.file}")
            val threads = DelegatePolicy.threads(requestedThreads, Runtime.getRuntime().availableProcessors())
            var handle: AutoCloseable? = null
            val opened = DelegatePolicy.open(requested, entry.file, threads, Build.VERSION.SDK_INT,
                signedInt8 = entry.quantize == "int8") { delegate ->
                handle?.close()
                handle = null
                val options = Interpreter.Options().setNumThreads(threads)
                when (delegate) {
                    Delegate.CPU -> options.setUseXNNPACK(true)
                    Delegate.GPU -> {
                        val compatibility = CompatibilityList()
                        try {
                            if (!compatibility.isDelegateSupportedOnThisDevice) {
                                throw IllegalStateException("this device's GPU is not supported by the GPU delegate")
                            }
                            GpuDelegate(compatibility.bestOptionsForThisDevice).also { handle = it; options.addDelegate(it) }
                        } finally {
                            compatibility.close()
                        }
                    }
                    Delegate.NNAPI -> NnApiDelegate().also { handle = it; options.addDelegate(it) }
                }
                try {
                    Interpreter(model, options)  // throws when the delegate cannot take the graph
                } catch (e: Exception) {
                    handle?.close()
                    handle = null
                    throw e
                }
            }
            return ModelRunner(task, name, entry, bundle, opened.engine, handle, opened.delegate, threads, opened.notice)
        }

        private fun mapAsset(assets: AssetManager, path: String): MappedByteBuffer {
            val fd = try {
                assets.openFd(path)
            } catch (e: java.io.FileNotFoundException) {
                throw BundleError("assets/$path: no such file (model.json names it; sync the run's bundle again)")
            }
            return fd.use { f ->
                FileInputStream(f.fileDescriptor).channel.use {
                    it.map(FileChannel.MapMode.READ_ONLY, f.startOffset, f.declaredLength)
                }
            }
        }
    }
}
