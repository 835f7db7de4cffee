"""Real worker processes on 127.0.0.1 (`--workers 2`, MultiWorkerMirroredStrategy): the same
weights as one process with the same global batch and seed, only the chief writes the run, QAT
under the same strategy, and a worker killed with SIGKILL resumed by rerunning the command.

The network is a small AlexNet (64-unit hidden layers, no dropout), trained without the random
flip: it has no BatchNorm, whose training statistics are each replica's own (half the global
batch), and no random op that differs per replica, so two workers compute what one process does
and only the all-reduce's summation order differs (measured: weights within 2.1e-5)."""

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import QUICKSTART, REPO, needs_fashion_mnist

pytestmark = [pytest.mark.slow, needs_fashion_mnist]
SMALL = ("data.val_samples=512", "data.test_limit=64", "train.batch_size=32",
         "train.warmup_epochs=0.2", "model.name=alexnet", "model.args.hidden=64", "model.args.dropout=0.0",
         "augment.horizontal_flip=false", "qat.epochs=1", "convert.calibration_samples=32")
TOLERANCE = 1e-4  # absolute, on weights of magnitude up to 0.3


def command(stage: str, workdir: Path, epochs: int, *extra: str, images: int = 2560) -> list[str]:
    cmd = [sys.executable, "-m", f"tfpipe.{stage}", "--config", str(QUICKSTART), "--workdir", str(workdir)]
    for assignment in (*SMALL, f"data.train_limit={images}", f"train.epochs={epochs}", "name=mw"):
        cmd += ["--set", assignment]
    return [*cmd, *extra]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def tree(root: Path) -> list[str]:
    """The run's files; a TensorBoard event file by its folder (its name holds the writer's pid)."""
    return sorted(str(p.parent.relative_to(root)) + "/<events>" if ".tfevents." in p.name else str(p.relative_to(root))
                  for p in root.rglob("*") if p.is_file())


def epochs_logged(history: Path) -> list[int]:
    if not history.exists():
        return []
    with history.open() as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_two_workers_train_as_one_process_does_and_only_the_chief_writes(tmp_path):
    from tfpipe.backend import keras

    one = run(command("train", tmp_path / "one", 2))
    assert one.returncode == 0, one.stderr[-3000:]
    two = run(command("train", tmp_path / "two", 2, "--workers", "2"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert re.search(r"Worker 0 \(127\.0\.0\.1:\d+\) of 2 processes, the chief; 2 replicas in sync", two.stdout)
    logs = re.search(r"the others log to (\S+)", two.stdout).group(1)
    assert not Path(logs).exists(), "the launcher keeps the other workers' logs only when one fails"
    chief_pid = re.search(r"\(pids (\d+), \d+\)", two.stdout).group(1)

    # Only the chief wrote: the same files as one process (but the layer statistics, measured in
    # one-replica runs only), every event file by the chief's pid.
    statistics = {"train/layer_stats.csv", "train/tensorboard/layer_stats/<events>"}
    one_process = set(tree(tmp_path / "one" / "mw")) - statistics
    assert tree(tmp_path / "two" / "mw") == sorted(one_process)
    assert "Layer statistics (train.layer_stats_every) are measured in one-replica runs" in two.stdout
    events = [p.name for p in (tmp_path / "two" / "mw").rglob("*.tfevents.*")]
    assert events and all(f".{chief_pid}." in name for name in events), events

    a = keras.models.load_model(tmp_path / "one" / "mw" / "train" / "model.keras", compile=False)
    b = keras.models.load_model(tmp_path / "two" / "mw" / "train" / "model.keras", compile=False)
    assert [w.name for w in a.weights] == [w.name for w in b.weights]
    moved = max(float(np.abs(w.numpy()).max()) for w in a.weights)
    differences = {w.name: float(np.abs(w.numpy() - v.numpy()).max())
                   for w, v in zip(a.weights, b.weights, strict=True)}
    assert max(differences.values()) <= TOLERANCE, differences
    assert moved > 100 * TOLERANCE  # the weights are not near zero, so the tolerance means something

    # QAT fine-tunes under the same strategy; again only the chief writes (qat/ and nothing else).
    before = set(tree(tmp_path / "two" / "mw"))
    qat = run(command("qat", tmp_path / "two", 2, "--workers", "2"))
    assert qat.returncode == 0, qat.stderr[-3000:]
    assert "Saved the QAT model to" in qat.stdout
    added = set(tree(tmp_path / "two" / "mw")) - before
    assert added == {"qat/model.h5", "qat/history.csv", "qat/tensorboard/train/<events>",
                     "qat/tensorboard/validation/<events>", "qat/tensorboard/update_ratio/<events>",
                     "qat/update_ratio.csv"}, added  # layer statistics: one-replica runs only


def test_a_worker_killed_in_epoch_2_resumes_when_rerun(tmp_path):
    epochs = 4
    cmd = command("train", tmp_path, epochs, "--workers", "2", images=1536)  # 32 steps an epoch
    history = tmp_path / "mw" / "train" / "history.csv"
    env = {**{k: v for k, v in os.environ.items() if k != "TF_CONFIG"}, "PYTHONUNBUFFERED": "1"}
    launcher = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = launcher.stdout.readline()
    pids = re.search(r"\(pids (\d+), (\d+)\)", started)
    assert pids, started
    deadline = time.time() + 600
    checkpoint = history.parent / "checkpoints" / "chief" / "checkpoint"  # tf.train's index, written last
    while not (epochs_logged(history) and checkpoint.is_file()) and launcher.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(int(pids.group(2)), signal.SIGKILL)  # worker 1, somewhere in epoch 2
    out, err = launcher.communicate(timeout=300)
    assert launcher.returncode == 128 + signal.SIGKILL, (started + out + err)[-3000:]
    assert "worker 1 was killed by SIGKILL; stopped the other workers" in err
    done = epochs_logged(history)
    assert done and len(done) < epochs
    assert not (tmp_path / "mw" / "train" / "model.keras").exists()

    second = run(cmd)
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = re.search(r"Resuming from the checkpoint of epoch (\d+): continuing at epoch (\d+)/4", second.stdout)
    assert resumed, second.stdout[-3000:]
    assert int(resumed.group(1)) in (len(done) - 1, len(done))  # a row is written just before its checkpoint
    assert epochs_logged(history) == list(range(epochs)), "every epoch once"
    assert (tmp_path / "mw" / "train" / "model.keras").is_file()
    assert not [p for p in (tmp_path / "mw").rglob("*") if "workertemp" in p.name or ".tmp" in p.name]


def _held_port():
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


@pytest.mark.parametrize("case", ["malformed", "index", "port"])
def test_a_bad_tf_config_is_one_line_and_exit_2_before_anything_is_written(tmp_path, monkeypatch, capsys, case):
    from tests.conftest import run_cli

    holder = _held_port()
    port = holder.getsockname()[1]
    configs = {
        "malformed": ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}',
                      "TF_CONFIG: not JSON (Expecting ',' delimiter at character 79)"),
        "index": ('{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 2}}',
                  "TF_CONFIG: task.index 2 is out of range: cluster.worker has 2 address(es), so 0-1"),
        "port": (f'{{"cluster": {{"worker": ["127.0.0.1:{port}"]}}, "task": {{"type": "worker", "index": 0}}}}',
                 f"TF_CONFIG: task worker 0's port {port} (127.0.0.1:{port}) is in use on this machine"),
    }
    text, expected = configs[case]
    monkeypatch.setenv("TF_CONFIG", text)
    run = tmp_path / "mw"
    run.mkdir()
    (run / "config.yaml").write_text("a run already here\n")
    try:
        for stage in ("tfpipe.train.__main__", "tfpipe.qat.__main__", "tfpipe.run"):
            code = run_cli(stage, command("x", tmp_path, 1, "--set", "train.strategy=multiworker")[3:])
            err = capsys.readouterr().err.strip().splitlines()
            assert code == 2 and len(err) == 1 and expected in err[0], err
    finally:
        holder.close()
    assert sorted(p.name for p in run.iterdir()) in (["config.yaml"], [".lock", "config.yaml"])  # run's writer lock
    assert (run / "config.yaml").read_text() == "a run already here\n"
