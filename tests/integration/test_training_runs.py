"""The training techniques end to end, on tiny real Fashion-MNIST runs: transfer learning with a
frozen phase, the divergence guard, auxiliary classifiers, the search and MirroredStrategy."""

import csv
import os
import subprocess
import sys
from contextlib import redirect_stdout
from io import StringIO

import numpy as np
import pytest

from tests.conftest import REPO, needs_fashion_mnist, run_cli, tiny_args

pytestmark = [pytest.mark.slow, needs_fashion_mnist]
TRAIN = "tfpipe.train.__main__"


def train(workdir, *extra, name):
    printed = StringIO()
    with redirect_stdout(printed):
        code = run_cli(TRAIN, tiny_args(workdir, *extra, name=name))
    return code, printed.getvalue()


def test_transfer_freezes_the_transferred_layers_then_fine_tunes_all_at_a_lower_rate(tiny_run, tmp_path):
    from tfpipe.backend import keras

    _, source_run, *_ = tiny_run
    code, out = train(tmp_path, "--set", f"train.pretrained={source_run.float_model}", "--set", "train.freeze_epochs=1",
                      "--set", "train.learning_rate=0.001", name="transfer")
    assert code == 0, out
    source = keras.models.load_model(source_run.float_model, compile=False)
    weighted = sum(1 for layer in source.layers if layer.weights)
    assert f"Transferred the weights of {weighted} of {weighted} weighted layers" in out
    assert "Epochs 1-1: the transferred layers are frozen" in out
    assert "Epochs 2-2: all layers train, at learning rate 0.0001" in out

    frozen = keras.models.clone_model(source)
    frozen.load_weights(tmp_path / "transfer" / "train" / "frozen_weights.h5")
    final = keras.models.load_model(tmp_path / "transfer" / "train" / "model.keras", compile=False)
    for name in ("stem_conv", "block5_project_conv", "block5_project_bn"):  # BN statistics included
        for before, during, after in zip(source.get_layer(name).get_weights(), frozen.get_layer(name).get_weights(),
                                         final.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(during, before)  # frozen in epoch 1
            assert not np.array_equal(after, before)  # trained in epoch 2
    assert not np.array_equal(frozen.get_layer("logits").get_weights()[0], source.get_layer("logits").get_weights()[0])
    with (tmp_path / "transfer" / "train" / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [row["epoch"] for row in rows] == ["0", "1"]  # one history across both phases
    assert all(0 < float(row["update_ratio"]) < 1 for row in rows)

    # killed after the frozen phase: a rerun starts from its weights instead of repeating it
    (tmp_path / "transfer" / "train" / "model.keras").unlink()
    code, out = train(tmp_path, "--set", f"train.pretrained={source_run.float_model}", "--set", "train.freeze_epochs=1",
                      "--set", "train.learning_rate=0.001", name="transfer")
    assert code == 0 and "Using the frozen phase's weights" in out and "are frozen" not in out


def test_divergence_guard_stops_a_blowing_up_run_and_says_so(tmp_path, capsys):
    code, out = train(tmp_path, "--set", "train.optimizer=sgd", "--set", "train.learning_rate=1000",
                      "--set", "train.warmup_epochs=0", name="diverge")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "training diverged at epoch 1, step" in err[0] and "lower train.learning_rate" in err[0]
    assert "the loss became nan" in err[0] or "more than 3 x its first value" in err[0]
    run = tmp_path / "diverge" / "train"
    assert not (run / "model.keras").exists() and not (run / "checkpoints").exists()


def test_a_snapshot_ensemble_saves_a_model_per_cycle_and_scores_their_average(tmp_path):
    import json

    from tfpipe.backend import keras
    from tfpipe.config import load_config
    from tfpipe.data.sources import load_splits

    code, out = train(tmp_path, "--set", "train.snapshots=2", name="snap")
    assert code == 0, out
    assert "Snapshot ensemble: 2 cosine cycles of 1 epochs" in out
    run = tmp_path / "snap" / "train"
    paths = [run / "snapshots" / f"snapshot_{k}.keras" for k in (1, 2)]
    report = json.loads((run / "snapshots.json").read_text())
    assert report["snapshots"] == [str(p) for p in paths] and report["images"] == 512
    # recomputed here: each snapshot's val probabilities, and their mean
    cfg = load_config(tmp_path / "snap" / "config.yaml")
    inputs, labels = load_splits(cfg.data, "labels").held_out_arrays(cfg.preprocess_spec())
    labels = np.asarray(labels)
    labels = labels.argmax(-1) if labels.ndim > 1 else labels
    probabilities = [keras.models.load_model(p, compile=False).predict(inputs, verbose=0) for p in paths]
    assert report["top1_each"] == pytest.approx([float(np.mean(p.argmax(-1) == labels)) for p in probabilities])
    assert report["top1_ensemble"] == pytest.approx(float(np.mean(np.mean(probabilities, 0).argmax(-1) == labels)))
    assert f"Snapshot ensemble on the 512 val images: top-1 {report['top1_ensemble']:.4f} from 2 snapshots" in out
    # the float model is the last snapshot
    last = keras.models.load_model(run / "model.keras", compile=False)
    for a, b in zip(last.weights, keras.models.load_model(paths[1], compile=False).weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_googlenet_auxiliary_classifiers_train_and_are_dropped_from_the_saved_model(tmp_path):
    from tfpipe.backend import keras

    code, out = train(tmp_path, "--set", "model.name=googlenet", "--set", "model.args={aux_classifiers: true}",
                      "--set", "train.epochs=1", "--set", "train.warmup_epochs=0.2", "--set", "data.train_limit=1536",
                      name="aux")
    assert code == 0, out
    with (tmp_path / "aux" / "train" / "history.csv").open() as f:
        columns = next(csv.reader(f))
    assert {"aux1_loss", "aux2_loss", "probabilities_loss", "val_probabilities_accuracy"} <= set(columns)
    model = keras.models.load_model(tmp_path / "aux" / "train" / "model.keras", compile=False)
    assert model.output_names == ["probabilities"] and not any(la.name.startswith("aux") for la in model.layers)
    assert "validation top-1" in out


def test_search_runs_coarse_then_fine_and_a_rerun_keeps_the_trials(tmp_path):
    from tfpipe.search import fine_box

    args = ["--trials", "3", "--fine-trials", "2", "--keep", "2", "--epochs", "1", "--lr-range", "1e-4", "1e-1",
            *tiny_args(tmp_path, "--set", "data.train_limit=1536", name="search")]
    printed = StringIO()
    with redirect_stdout(printed):
        assert run_cli("tfpipe.search", args) == 0
    out = printed.getvalue()
    with (tmp_path / "search" / "search" / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["trial"], r["stage"]) for r in rows] == [("1", "coarse"), ("2", "coarse"), ("3", "coarse"),
                                                        ("4", "fine"), ("5", "fine")]
    assert all(1e-4 <= float(r["learning_rate"]) <= 1e-1 for r in rows)
    lo, hi = fine_box(rows[:3], {"learning_rate": (1e-4, 1e-1)}, keep=2)["learning_rate"]
    assert all(lo <= float(r["learning_rate"]) <= hi for r in rows[3:])
    best = max(rows, key=lambda r: float(r["val_top1"]))
    assert f"Best: trial {best['trial']} ({best['stage']}), val top-1 {float(best['val_top1']):.4f}" in out
    assert f"--set train.learning_rate={float(best['learning_rate']):.3g}" in out
    table = (tmp_path / "search" / "search" / "results.md").read_text().splitlines()
    assert len(table) == 2 + 5 and f"| 1 | {best['trial']} |" in table[2]

    printed = StringIO()
    with redirect_stdout(printed):
        assert run_cli("tfpipe.search", args) == 0
    assert printed.getvalue().count("kept from the earlier search") == 5


MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import importlib
from tfpipe.cli import main
main(importlib.import_module(sys.argv[1]).STAGE, sys.argv[2:])
"""


def test_mirrored_strategy_trains_and_fine_tunes_on_two_logical_cpus(tmp_path):
    """MirroredStrategy with one replica per logical device: the CPU is split in two, in a process
    of its own (the split must come before TensorFlow starts); QAT runs under it too."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
    args = tiny_args(tmp_path, "--set", "train.strategy=mirrored", "--set", "train.epochs=1",
                     "--set", "train.warmup_epochs=0.2", "--set", "data.train_limit=640", "--set",
                     "data.val_samples=128", name="mirrored")  # a quarter of the tiny run: what runs is the point
    done = subprocess.run([sys.executable, "-c", MIRRORED, "tfpipe.train.__main__", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 epoch of 16 steps on 2 replicas" in done.stdout
    assert (tmp_path / "mirrored" / "train" / "model.keras").is_file()
    assert "validation top-1" in done.stdout
    # QAT fine-tunes under the training's strategy
    qat = subprocess.run([sys.executable, "-c", MIRRORED, "tfpipe.qat.__main__", *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert qat.returncode == 0, qat.stderr[-2000:]
    assert "2 replicas in sync" in qat.stdout and "Saved the QAT model to" in qat.stdout
    assert (tmp_path / "mirrored" / "qat" / "model.h5").is_file()


def test_multiworker_without_tf_config_is_refused(tmp_path, capsys):
    os.environ.pop("TF_CONFIG", None)
    code, _ = train(tmp_path, "--set", "train.strategy=multiworker", name="multi")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "multiworker needs the TF_CONFIG environment variable" in err[0]
