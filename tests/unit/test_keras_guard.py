import subprocess
import sys

from tests.conftest import REPO


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300)


def test_tensorflow_imported_first_gets_a_clear_error():
    result = run_python(
        "import tensorflow as tf\n"
        "tf.keras.layers  # resolves tf.keras to Keras 3 before tfpipe can switch it\n"
        "from tfpipe.errors import TfpipeError\n"
        "try:\n"
        "    import tfpipe.backend\n"
        "except TfpipeError as e:\n"
        "    print('ERROR', e)\n"
        "else:\n"
        "    print('NO ERROR')\n")
    assert result.returncode == 0, result.stderr
    assert "ERROR tf.keras resolves to keras" in result.stdout and "Keras 3" in result.stdout
    assert "import tfpipe first" in result.stdout


def test_tfpipe_first_gives_keras2_everywhere():
    result = run_python(
        "import tfpipe.backend as b\n"
        "import tf_keras\n"
        "from tfpipe.data.augment import build_augmenter\n"
        "from tfpipe.config import AugmentConfig\n"
        "import keras_cv\n"
        "print(b.tf.keras.Model is tf_keras.Model, b.keras is tf_keras,\n"
        "      isinstance(keras_cv.layers.RandomFlip(), tf_keras.layers.Layer))\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-3:] == ["True", "True", "True"]


def test_native_output_is_silenced_unless_debugging(capfd, monkeypatch):
    import os

    from tfpipe.backend import native_output_silenced

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_output_silenced((1, 2)):
        os.write(1, b"converter chatter\n")
        os.write(2, b"cuInit failed\n")
    print("after", flush=True)
    assert capfd.readouterr() == ("after\n", "")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # what --debug sets
    with native_output_silenced((2,)):
        os.write(2, b"shown\n")
    assert capfd.readouterr().err == "shown\n"
