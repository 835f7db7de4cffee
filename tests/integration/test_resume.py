"""A training run killed with SIGKILL continues from its last completed epoch when rerun."""

import csv
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import QUICKSTART, REPO, needs_fashion_mnist

pytestmark = [pytest.mark.slow, needs_fashion_mnist]
EPOCHS = 4


def epochs_logged(history) -> list[int]:
    if not history.exists():
        return []
    with history.open() as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_sigkill_then_rerun_resumes(tmp_path):
    cmd = [sys.executable, "-m", "tfpipe.train", "--config", str(QUICKSTART), "--workdir", str(tmp_path)]
    for assignment in ("name=resume", "data.train_limit=2560", "data.val_samples=256", "data.test_limit=64",
                       f"train.epochs={EPOCHS}", "train.batch_size=64"):
        cmd += ["--set", assignment]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    history = tmp_path / "resume" / "train" / "history.csv"

    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    checkpoint = history.parent / "checkpoints" / "chief" / "checkpoint"  # tf.train's index, written last
    while not (epochs_logged(history) and checkpoint.is_file()) and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL, "training ended before it could be killed"
    done = epochs_logged(history)
    assert done and len(done) < EPOCHS
    assert not (tmp_path / "resume" / "train" / "model.keras").exists()

    second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    resumed = re.search(r"Resuming from the checkpoint of epoch (\d+): continuing at epoch (\d+)/4", second.stdout)
    assert resumed, second.stdout[-2000:]
    # The kill may land between an epoch's history row and its checkpoint: that epoch runs again
    # and its row is replaced, so history.csv holds every epoch once.
    assert int(resumed.group(1)) in (len(done) - 1, len(done))
    assert epochs_logged(history) == list(range(EPOCHS))
    assert (tmp_path / "resume" / "train" / "model.keras").is_file()
    assert not [p for p in (tmp_path / "resume").rglob("*") if ".tmp" in p.name]
