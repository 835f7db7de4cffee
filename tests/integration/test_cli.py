"""Bad input through the real command line: one line naming the problem, exit 2, nothing written."""

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import QUICKSTART, REPO, TINY, needs_fashion_mnist, run_cli


def sets(*assignments: str) -> list[str]:
    return [arg for a in assignments for arg in ("--set", a)]


def run_stage(module: str, argv: list[str], capsys) -> tuple[int, str, str]:
    code = run_cli(module, argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_unknown_config_key(tmp_path, capsys):
    config = tmp_path / "typo.yaml"
    config.write_text(f"base: {QUICKSTART}\ntrain:\n  epoch: 3\n")
    code, _, err = run_stage("tfpipe.train.__main__", ["--config", str(config), "--workdir", str(tmp_path / "runs")],
                             capsys)
    assert_one_line_error(code, err, str(config), "unknown key 'train.epoch'", "did you mean 'train.epochs'")
    assert not (tmp_path / "runs").exists()


def test_invalid_quantize_value(tmp_path, capsys):
    code, _, err = run_stage("tfpipe.convert.__main__", ["--quantize", "int4", "--workdir", str(tmp_path)], capsys)
    assert_one_line_error(code, err, "--quantize", "invalid choice: 'int4'", "int16x8")
    code, _, err = run_stage("tfpipe.convert.__main__", ["--quantize", "fp16", "--io-dtype", "uint8",
                                                         "--workdir", str(tmp_path)], capsys)
    assert_one_line_error(code, err, "--io-dtype uint8 needs --quantize int8")
    assert list(tmp_path.iterdir()) == []


def test_unknown_model_argument(tmp_path, capsys):
    code, _, err = run_stage("tfpipe.train.__main__", [*sets("model.args.stem_strid=1"), "--workdir", str(tmp_path)],
                             capsys)
    assert_one_line_error(code, err, "quickstart.yaml", "model.args: unknown option 'stem_strid'",
                          "did you mean 'stem_stride'")


def test_corrupt_idx_file(tmp_path, fake_fashion, capsys):
    (fake_fashion / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x0a"))
    code, _, err = run_stage("tfpipe.train.__main__", [*sets(f"data.path={fake_fashion}", "data.val_samples=5"),
                                                       "--workdir", str(tmp_path / "runs")], capsys)
    assert_one_line_error(code, err, "t10k-labels-idx1-ubyte.gz", "header promises 10 bytes")
    assert not (tmp_path / "runs").exists()


def test_missing_dataset(tmp_path, monkeypatch, capsys):
    from tfpipe.data import fashion_mnist

    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("TFPIPE_DATA", raising=False)
    monkeypatch.setattr(fashion_mnist, "download", lambda folder: (_ for _ in ()).throw(OSError("offline")))
    code, _, err = run_stage("tfpipe.run", ["--workdir", str(tmp_path / "runs")], capsys)
    assert_one_line_error(code, err, "Fashion-MNIST not found; looked in:", "no-debian", "download failed",
                          "install Debian's dataset-fashion-mnist")
    assert not (tmp_path / "runs").exists()


def test_missing_and_non_tflite_model_files(tmp_path, capsys):
    code, _, err = run_stage("tfpipe.evaluate.__main__", ["--workdir", str(tmp_path), "--models",
                                                          str(tmp_path / "missing.tflite")], capsys)
    assert_one_line_error(code, err, "model file not found:", "missing.tflite")
    export = tmp_path / "quickstart" / "export"
    export.mkdir(parents=True)
    (export / "model_int8.tflite").write_text("<html>not a model</html>")
    code, _, err = run_stage("tfpipe.evaluate.__main__", ["--workdir", str(tmp_path)], capsys)
    assert_one_line_error(code, err, "model_int8.tflite: not a TFLite model")
    assert not (tmp_path / "quickstart" / "eval").exists()


def test_evaluate_threads_workers_and_max_drop_are_checked(tmp_path, capsys):
    code, _, err = run_stage("tfpipe.evaluate.__main__", ["--workdir", str(tmp_path), "--threads", "0"], capsys)
    assert_one_line_error(code, err, "--threads: 0 is not accepted")
    code, _, err = run_stage("tfpipe.evaluate.__main__", ["--workdir", str(tmp_path), "--max-drop", "-1"], capsys)
    assert_one_line_error(code, err, "argument --max-drop: '-1' is not accepted")
    code, _, err = run_stage("tfpipe.evaluate.__main__", ["--workdir", str(tmp_path), "--workers", "0"], capsys)
    assert_one_line_error(code, err, "--workers: 0 is not accepted")
    code, _, err = run_stage("tfpipe.evaluate.__main__", ["--workdir", str(tmp_path), "--set", "evaluate.workers=-2"],
                             capsys)
    assert_one_line_error(code, err, "evaluate.workers: -2 is not accepted")
    code, _, err = run_stage("tfpipe.evaluate.__main__", ["--workdir", str(tmp_path), "--runtime-python",
                                                          str(tmp_path / "nope" / "python")], capsys)
    assert_one_line_error(code, err, "--runtime-python:", "nope/python is not an executable Python")


def test_qat_without_a_trained_model(tmp_path, capsys):
    code, _, err = run_stage("tfpipe.qat.__main__", ["--workdir", str(tmp_path)], capsys)
    assert_one_line_error(code, err, "no trained model at", "model.keras", "tfpipe.train")


def test_dispatcher_and_help(capsys):
    from tfpipe.__main__ import STAGES
    from tfpipe.__main__ import main as tfpipe_main

    with pytest.raises(SystemExit) as e:
        tfpipe_main(["deploy"])
    assert e.value.code == 2 and "unknown stage 'deploy'" in capsys.readouterr().err
    for stage in STAGES:
        with pytest.raises(SystemExit) as e:
            tfpipe_main([stage, "--help"])
        out = capsys.readouterr().out
        assert e.value.code == 0 and "example:" in out and "--debug" in out, stage


def test_module_and_console_script_entry_points():
    for cmd in ([sys.executable, "-m", "tfpipe.convert", "--help"], [str(Path(sys.executable).parent / "tfpipe"),
                                                                      "evaluate", "--help"]):
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
        assert result.returncode == 0 and "example:" in result.stdout, result.stderr


@needs_fashion_mnist
def test_doctor(capsys):
    import keras_cv  # noqa: F401  (renames tf.keras's module to "tensorflow.keras"; still Keras 2)

    code, out, _ = run_stage("tfpipe.doctor", [], capsys)
    assert code == 0
    lines = {line[:31].strip(): line[31:] for line in out.splitlines()}
    assert lines["Keras 2 active"].startswith("yes") and lines["runtime ai-edge-litert"] == "ok"
    assert lines["dataset fashion_mnist"].startswith("/") and "tool edgetpu_compiler" in lines


def test_tiny_settings_are_valid():
    from tfpipe.config import load_config

    assert load_config(QUICKSTART, list(TINY)).data.test_limit == 256
