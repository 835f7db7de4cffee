import os
import signal

import numpy as np
import pytest

from tfpipe.errors import TfpipeError
from tfpipe.runtime import Worker, WorkerCrashed, check_tflite_file
from tfpipe.runtime.quant import dequantize, quantize


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory):
    """A small MobileNetV2 as fp32 and as full-int8 (uint8 I/O) .tflite, plus its Keras model."""
    from tfpipe import models
    from tfpipe.backend import keras
    from tfpipe.config import ModelConfig
    from tfpipe.convert.tflite import to_tflite

    keras.utils.set_random_seed(0)
    model = models.build(ModelConfig(name="mobilenet_v2_035", input_size=(32, 32), channels=1), "classification", 10)
    rng = np.random.default_rng(0)
    calibration = rng.uniform(-1, 1, (16, 32, 32, 1)).astype(np.float32)
    folder = tmp_path_factory.mktemp("tflite")
    paths = {}
    for mode, io in (("none", "float"), ("int8", "uint8")):
        paths[mode] = folder / f"{mode}.tflite"
        paths[mode].write_bytes(to_tflite(model, mode, io, calibration if mode == "int8" else None))
    return model, paths, calibration


def test_quantize_rounds_half_to_even_and_saturates():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 1.5, 1000.0], np.float32)
    assert quantize(x, np.int8, 1.0, 0).tolist() == [-2, 0, 0, 0, 2, 127]
    assert quantize(x, np.uint8, 1.0, 128).tolist() == [126, 128, 128, 128, 130, 255]
    assert quantize(x, np.float32, 1.0, 0).dtype == np.float32


def test_dequantize_inverts_quantize_within_half_a_step():
    x = np.linspace(-1, 1, 101).astype(np.float32)
    scale, zero_point = 2 / 255, 128
    back = dequantize(quantize(x, np.uint8, scale, zero_point), scale, zero_point)
    assert np.abs(back - x).max() <= scale / 2 + 1e-7


def test_worker_imports_no_tensorflow_and_matches_keras(tiny_tflite):
    model, paths, calibration = tiny_tflite
    with Worker(paths["none"]) as worker:
        assert not [m for m in worker.loaded_modules() if m == "tensorflow" or m.startswith("tensorflow.")]
        assert worker.info["backend"] == "litert"
        assert list(worker.outputs) == ["probabilities"]  # the signature name, not a tensor position
        out = worker.predict({"images": calibration[:4]})["probabilities"]
    np.testing.assert_allclose(out, model.predict(calibration[:4], verbose=0), atol=1e-5)


def test_int8_model_is_integer_from_input_to_output(tiny_tflite):
    model, paths, calibration = tiny_tflite
    with Worker(paths["int8"]) as worker:
        info = worker.info
        scores = worker.predict({"images": calibration})["probabilities"]
    assert info["inputs"]["images"]["dtype"] == "uint8" and info["inputs"]["images"]["shape"] == [1, 32, 32, 1]
    assert info["outputs"]["probabilities"]["dtype"] == "uint8"
    assert set(info["graph"]["activation_dtypes"]) <= {"int8", "uint8"}
    assert not {"SHAPE", "PACK"} & set(info["graph"]["ops"]) and info["graph"]["dynamic_tensors"] == []
    assert scores.dtype == np.float32 and np.allclose(scores.sum(axis=1), 1, atol=0.05)


def test_bad_model_files_are_named(tmp_path):
    with pytest.raises(TfpipeError, match="model file not found: .*missing.tflite"):
        check_tflite_file(tmp_path / "missing.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a flatbuffer at all")
    with pytest.raises(TfpipeError, match="junk.tflite: not a TFLite model"):
        Worker(junk)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 40)
    with pytest.raises(TfpipeError, match="truncated.tflite: the runtime cannot load it"):
        Worker(truncated)


def test_a_dead_worker_is_reported(tiny_tflite):
    _, paths, calibration = tiny_tflite
    worker = Worker(paths["none"])
    os.kill(worker._proc.pid, signal.SIGKILL)
    with pytest.raises(WorkerCrashed, match="died with status -9 during 'predict'"):
        worker.predict({"images": calibration[:1]})
    worker.close()
