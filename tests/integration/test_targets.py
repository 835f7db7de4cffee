"""`convert --target`: the conversion matrix on the quickstart model, the checks convert runs by
itself, byte-identical re-conversion, and the combinations a target refuses."""

import json

import numpy as np
import pytest

from tests.conftest import needs_fashion_mnist, run_cli, tiny_args
from tfpipe.convert.converter import modes_for_target
from tfpipe.errors import TfpipeError
from tfpipe.rundir import RunDir
from tfpipe.runtime import Worker
from tfpipe.runtime.contract import QUANT_MODES, TARGET_DEFAULT, target_modes

pytestmark = [needs_fashion_mnist, pytest.mark.slow]

# the modes TFLiteConverter makes (the tiny run's files); weight_int8 is the LiteRT Quantizer's (test_litert.py)
MATRIX = [(target, mode) for target in TARGET_DEFAULT for mode in target_modes(target)
          if "converter" in QUANT_MODES[mode].engines]


@pytest.fixture(scope="module")
def ptq_run(tiny_run, tmp_path_factory):
    """A copy of the tiny run plus int8 by post-training calibration (`--target nnapi --ptq`)."""
    import shutil

    cfg, run, *_ = tiny_run
    workdir = tmp_path_factory.mktemp("ptq")
    shutil.copytree(run.root, workdir / run.root.name)
    assert run_cli("tfpipe.convert.__main__", ["--target", "nnapi", "--quantize", "int8", "--ptq",
                                               *tiny_args(workdir)]) == 0
    return RunDir.for_config(cfg, workdir)


def top1(model_path, inputs):
    with Worker(model_path, threads=1) as worker:
        probabilities = worker.predict({next(iter(worker.inputs)): inputs})["probabilities"]
    assert probabilities.shape == (len(inputs), 10) and np.allclose(probabilities.sum(-1), 1, atol=0.02)
    return np.argmax(probabilities, axis=-1)


@pytest.fixture(scope="module")
def source_top1(tiny_run):
    """The tiny run's 256 preprocessed test images, and the top-1 on them of the two Keras models
    a conversion starts from: the float model (every mode, and int8 by PTQ) and the QAT model
    (int8 by QAT). Computed once."""
    from tfpipe.qat import load_qat_model
    from tfpipe.train.trainer import load_float_model

    cfg, run, splits, *_ = tiny_run
    inputs = splits.evaluation_arrays(cfg.preprocess_spec())[0]
    assert len(inputs) == 256
    return inputs, {"float": np.argmax(load_float_model(run).predict(inputs, verbose=0), axis=-1),
                    "QAT": np.argmax(load_qat_model(run.qat_model).predict(inputs, verbose=0), axis=-1)}


@pytest.mark.parametrize("target, mode", MATRIX + [("cpu", "int8 PTQ"), ("nnapi", "int8 PTQ")])
def test_conversion_matrix_every_valid_pair_converts_and_runs(tiny_run, ptq_run, source_top1, target, mode):
    """Each pair a target accepts, from the quickstart run's own models (int8: QAT, and PTQ),
    run under ai-edge-litert on the 256 test images: valid probabilities, and top-1 agreeing with
    the Keras model it was converted from. The QAT model is the reference for int8 by QAT, not the
    float model: the tiny run is 2 short epochs, so QAT's own fine-tune epoch moves 10-30 % of
    its answers, by how far training got (measured: 0.89 of 256, and 0.72 of 32 in one CI run).
    Measured against the source: 0.94-1.00 for every mode; a broken conversion agrees on about
    1 image in 10."""
    _, run, *_ = tiny_run
    quantize = mode.split()[0]
    assert modes_for_target(target, [quantize], ("none",)) == [quantize]
    ptq = mode.endswith("PTQ")
    path = (ptq_run if ptq else run).tflite(quantize)
    inputs, sources = source_top1
    source = "QAT" if quantize == "int8" and not ptq else "float"
    agree = np.mean(top1(path, inputs) == sources[source])
    assert agree >= 0.85, f"{target}/{mode}: agrees with the {source} Keras model on {agree:.0%} of 256 test images"


@pytest.mark.parametrize("target, mode", [(t, m) for t in TARGET_DEFAULT for m in QUANT_MODES
                                          if m not in target_modes(t)])
def test_invalid_target_and_mode_pairs_are_refused(target, mode):
    with pytest.raises(TfpipeError, match=f"the {target} target does not run {mode} models"):
        modes_for_target(target, [mode], ("none",))


def test_refused_on_the_command_line_before_anything_is_written(copy_run, capsys):
    run = RunDir(copy_run / "tiny")
    before = {p.name: p.read_bytes() for p in run.export.iterdir()}
    assert run_cli("tfpipe.convert.__main__", ["--target", "edgetpu", "--quantize", "fp16",
                                               *tiny_args(copy_run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("tfpipe convert: error: --target edgetpu --quantize fp16: the edgetpu target does not run "
                   "fp16 models (use --quantize int8 with --target edgetpu)")
    assert {p.name: p.read_bytes() for p in run.export.iterdir()} == before


def test_edgetpu_target_reconverts_byte_identically_and_checks_itself(tiny_run, copy_run, capsys):
    """The Edge TPU gets uint8 I/O (convert.io_dtype auto), every other target int8. Same QAT
    checkpoint, same calibration data, same interface: the same bytes. Convert then runs the Edge
    TPU check, which predicts every op of the quickstart's MobileNetV2 int8 model mapped."""
    _, run, *_ = tiny_run
    assert json.loads(run.model_json.read_text())["models"]["int8"]["io_dtype"] == "int8"  # the cpu default
    assert run_cli("tfpipe.convert.__main__", ["--target", "edgetpu", "--io-dtype", "int8",
                                               *tiny_args(copy_run)]) == 0
    fresh = RunDir(copy_run / "tiny")
    assert fresh.tflite("int8").read_bytes() == run.tflite("int8").read_bytes()
    capsys.readouterr()
    assert run_cli("tfpipe.convert.__main__", ["--target", "edgetpu", *tiny_args(copy_run)]) == 0
    int8 = json.loads(fresh.model_json.read_text())["models"]["int8"]
    assert int8["io_dtype"] == "uint8" and int8["inputs"]["images"]["dtype"] == "uint8"
    # 65 ops and the two QUANTIZE ops of the uint8 interface, which the Edge TPU also maps
    assert "Edge TPU (predicted): 67/67 ops mapped (100%), 100.0% of" in capsys.readouterr().out
    compat = json.loads((fresh.export / "compat_edgetpu.json").read_text())
    assert compat["first_unmapped"] is None and compat["macs"]["share"] == 1.0
    assert compat["requirements"] == {"quantized": True, "static_shapes": True, "at_most_3_dims_above_1": True}


def test_convert_writes_a_report_for_each_target_a_mode_is_meant_for(tiny_run):
    _, run, *_ = tiny_run
    written = sorted(p.name for p in run.export.glob("compat_*.json"))
    assert written == ["compat_edgetpu.json", "compat_gpu_model_fp16.json", "compat_gpu_model_fp32.json",
                       "compat_nnapi.json", "compat_nnapi_model_fp16.json"]
    gpu = json.loads((run.export / "compat_gpu_model_fp32.json").read_text())
    assert gpu["unsupported_ops"] == [] and gpu["target"] == "gpu"
