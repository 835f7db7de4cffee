package dev.tfpipe.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Test

class RuntimeTest {
    @Test
    fun inputBuffersHoldTheQuantizedBytesAndOutputsDequantize() {
        val u8 = TensorSpec("images", intArrayOf(1, 3), DType.UINT8, 1.0 / 128, 128)
        val buffer = Tensors.input(floatArrayOf(-1f, 0f, 0.99f), u8)
        assertArrayEquals(intArrayOf(0, 128, 255), Tensors.raw(buffer, u8))
        assertArrayEquals(floatArrayOf(-1f, 0f, 127f / 128), Tensors.read(buffer, u8), 0f)
        val f32 = TensorSpec("x", intArrayOf(2), DType.FLOAT32, 0.0, 0)
        assertArrayEquals(floatArrayOf(1.5f, -2f), Tensors.read(Tensors.input(floatArrayOf(1.5f, -2f), f32), f32), 0f)
        val i8 = TensorSpec("y", intArrayOf(2), DType.INT8, 0.5, -10)
        assertArrayEquals(intArrayOf(-128, 127), Tensors.raw(Tensors.input(floatArrayOf(-1000f, 1000f), i8), i8))
    }

    @Test
    fun aRejectedDelegateFallsBackToTheCpuAndSaysWhy() {
        val tried = ArrayList<Delegate>()
        val opened = DelegatePolicy.open(Delegate.GPU, "model_int8.tflite", 4, 33, signedInt8 = true) {
            tried.add(it)
            if (it == Delegate.GPU) throw IllegalArgumentException("Internal error: Failed to apply delegate: TOPK_V2\nmore") else "cpu"
        }
        assertEquals(listOf(Delegate.GPU, Delegate.CPU), tried)
        assertEquals(Delegate.CPU, opened.delegate)
        assertEquals("GPU rejected model_int8.tflite (Internal error: Failed to apply delegate: TOPK_V2); " +
            "running on the CPU (XNNPACK) with 4 threads", opened.notice)
    }

    @Test
    fun nnapiIsNotTriedWhereTheDeviceCannotRunTheModel() {
        val tried = ArrayList<Delegate>()
        val opened = DelegatePolicy.open(Delegate.NNAPI, "m.tflite", 1, 29, signedInt8 = true) { tried.add(it); it }
        assertEquals(listOf(Delegate.CPU), tried)
        assertEquals("NNAPI runs signed int8 models from Android 11 (API 30), this device has API 29; " +
            "running on the CPU (XNNPACK) with 1 thread", opened.notice)
        assertEquals("NNAPI needs Android 8.1 (API 27), this device has API 24", DelegatePolicy.unavailable(Delegate.NNAPI, 24, false))
        val ok = DelegatePolicy.open(Delegate.NNAPI, "m.tflite", 2, 30, signedInt8 = true) { it }
        assertEquals(Delegate.NNAPI, ok.delegate)
        assertNull(ok.notice)
        assertEquals(8, DelegatePolicy.threads(64, 8))
        assertEquals(1, DelegatePolicy.threads(0, 8))
    }

    @Test
    fun latencyIsTheMeanOfTheLastWindow() {
        val meter = LatencyMeter(window = 2)
        assertEquals("-", meter.text())
        meter.add(100.0); meter.add(10.0); meter.add(30.0)
        assertEquals(20.0, meter.meanMs, 0.0)
        assertEquals(50.0, meter.fps, 1e-9)
        assertEquals("20.0 ms  50.0 fps", meter.text())
    }
}
