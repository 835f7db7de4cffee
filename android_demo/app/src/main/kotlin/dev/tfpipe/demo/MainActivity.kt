package dev.tfpipe.demo

import android.Manifest
import android.content.pm.PackageManager
import android.graphics.Bitmap
import android.graphics.Matrix
import android.os.Bundle
import android.util.Log
import android.view.View
import android.widget.AdapterView
import android.widget.ArrayAdapter
import android.widget.Spinner
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.result.contract.ActivityResultContracts
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.core.resolutionselector.AspectRatioStrategy
import androidx.camera.core.resolutionselector.ResolutionSelector
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import dev.tfpipe.core.Delegate
import dev.tfpipe.core.LatencyMeter
import dev.tfpipe.core.Prediction
import dev.tfpipe.core.Task
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * The demo: the back camera through CameraX, one bundle per mode (classify, detect, segment) from
 * the assets, a delegate picker (CPU/XNNPACK with a thread count, GPU, NNAPI) and the latency on
 * screen. Opening a model and running frames happen on one background thread, so a frame never
 * meets a half-closed interpreter.
 */
class MainActivity : ComponentActivity() {
    private lateinit var preview: PreviewView
    private lateinit var overlay: OverlayView
    private lateinit var status: TextView
    private lateinit var results: TextView
    private lateinit var modeSpinner: Spinner
    private lateinit var delegateSpinner: Spinner
    private lateinit var threadSpinner: Spinner

    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private var modes: List<Task> = emptyList()
    private val threadChoices = listOf(1, 2, 4, 8)

    // touched on `worker` only
    private var runner: ModelRunner? = null
    private var latency = LatencyMeter()
    private var notice: String? = null

    private val askCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else status.text = getString(R.string.no_camera)
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        preview = findViewById(R.id.preview)
        overlay = findViewById(R.id.overlay)
        status = findViewById(R.id.status)
        results = findViewById(R.id.results)
        modeSpinner = findViewById(R.id.mode)
        delegateSpinner = findViewById(R.id.delegate)
        threadSpinner = findViewById(R.id.threads)

        modes = AssetBundles.available(assets)
        if (modes.isEmpty()) {
            status.text = getString(R.string.no_bundle)
            return
        }
        val labels = mapOf(Task.CLASSIFICATION to "Classify", Task.DETECTION to "Detect", Task.SEGMENTATION to "Segment",
            Task.INSTANCE_SEGMENTATION to "Instances")
        modeSpinner.adapter = adapter(modes.map { labels.getValue(it) })
        delegateSpinner.adapter = adapter(Delegate.entries.map { it.label })
        threadSpinner.adapter = adapter(threadChoices.map { "$it thr" })
        threadSpinner.setSelection(threadChoices.indexOf(4))
        val reopen = object : AdapterView.OnItemSelectedListener {
            override fun onItemSelected(parent: AdapterView<*>?, view: View?, position: Int, id: Long) = reopen()
            override fun onNothingSelected(parent: AdapterView<*>?) = Unit
        }
        listOf(modeSpinner, delegateSpinner, threadSpinner).forEach { it.onItemSelectedListener = reopen }

        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            askCamera.launch(Manifest.permission.CAMERA)
        }
    }

    private fun adapter(items: List<String>) =
        ArrayAdapter(this, android.R.layout.simple_spinner_item, items).apply {
            setDropDownViewResource(android.R.layout.simple_spinner_dropdown_item)
        }

    /** (Re)opens the selected mode's model on the selected delegate; the fallback notice stays on screen. */
    private fun reopen() {
        val task = modes[modeSpinner.selectedItemPosition]
        val delegate = Delegate.entries[delegateSpinner.selectedItemPosition]
        val threads = threadChoices[threadSpinner.selectedItemPosition]
        status.text = getString(R.string.opening, task.key, delegate.label)
        worker.execute {
            runner?.close()
            runner = null
            val text = try {
                val opened = ModelRunner.open(assets, task, delegate, threads)
                runner = opened
                latency = LatencyMeter()
                notice = opened.notice
                opened.describe() + (opened.notice?.let { "\n$it" } ?: "")
            } catch (e: Exception) {  // a BundleError names the file and field; anything else, its message
                Log.e(TAG, "opening the ${task.key} bundle failed", e)
                e.message ?: e.javaClass.simpleName
            }
            runOnUiThread {
                status.text = text
                overlay.show(null, 1, 1)
                results.text = ""
            }
        }
    }

    private fun startCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            val provider = future.get()
            // the same 4:3 frame for the preview and the analysis, so overlays line up
            val resolution = ResolutionSelector.Builder()
                .setAspectRatioStrategy(AspectRatioStrategy.RATIO_4_3_FALLBACK_AUTO_STRATEGY).build()
            val shown = Preview.Builder().setResolutionSelector(resolution).build()
                .also { it.setSurfaceProvider(preview.surfaceProvider) }
            val analysis = ImageAnalysis.Builder()
                .setResolutionSelector(resolution)
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
                .also { it.setAnalyzer(worker, ::analyze) }
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, shown, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    /** One camera frame, on `worker`: upright bitmap -> the core's preprocessing -> LiteRT -> decoded prediction. */
    private fun analyze(frame: ImageProxy) {
        frame.use {
            val current = runner ?: return
            val bitmap = upright(frame.toBitmap(), frame.imageInfo.rotationDegrees)
            val result = try {
                current.run(bitmap)
            } catch (e: Exception) {
                Log.e(TAG, "inference failed", e)
                runOnUiThread { status.text = "${current.describe()}: ${e.message}" }
                return
            }
            latency.add(result.inferenceMs)
            val head = current.describe() + "  " + latency.text() + (notice?.let { "\n$it" } ?: "")
            val text = when (val p = result.prediction) {
                is Prediction.Classes -> p.top.joinToString("\n") { (name, score) -> "$name  ${"%.3f".format(score)}" }
                is Prediction.Boxes -> "${p.detections.size} detection(s)"
                is Prediction.Mask -> "mask ${p.width} x ${p.height}"
                is Prediction.Instances -> "${p.detections.size} instance(s)"
            }
            runOnUiThread {
                status.text = head
                results.text = text
                overlay.show(result.prediction, bitmap.width, bitmap.height)
            }
        }
    }

    private fun upright(bitmap: Bitmap, degrees: Int): Bitmap =
        if (degrees == 0) bitmap
        else Bitmap.createBitmap(bitmap, 0, 0, bitmap.width, bitmap.height, Matrix().apply { postRotate(degrees.toFloat()) }, true)

    override fun onDestroy() {
        super.onDestroy()
        worker.execute { runner?.close(); runner = null }
        worker.shutdown()
    }

    companion object {
        private const val TAG = "tfpipe"
    }
}
