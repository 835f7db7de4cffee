"""The trainer's callbacks: resume after a kill, the divergence guard, and the update/weight ratio."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from tfpipe.backend import keras, tf


class ResumeFromBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore (a tf.train checkpoint of weights, optimizer and epoch at every epoch end,
    written before the index that points at it) that tells the user when it resumes and keeps
    `history` (history.csv, when given) holding each epoch once, whenever a kill lands.

    An epoch's row is written before its checkpoint, and a resumed run first drops the rows of
    epochs it will run again: a kill between the two repeats the epoch and replaces its row
    (the other order lost the row of a checkpointed epoch). Goes last among the callbacks, so its
    row has what the others add to the logs (update_ratio)."""

    def __init__(self, backup_dir: str, history: Path | None = None, initial_epoch: int = 0):
        super().__init__(backup_dir)
        self.history = history
        self.initial_epoch = initial_epoch
        self._csv = keras.callbacks.CSVLogger(str(history), append=True) if history else None

    def set_model(self, model):
        super().set_model(model)
        if self._csv:
            self._csv.set_model(model)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        # The restored epoch counter is private to tf_keras; -1 means "nothing restored".
        state = getattr(self.model, "_training_state", None)
        saved = int(state._ckpt_saved_epoch.numpy()) if state is not None else -1
        if saved >= 0:
            print(f"Resuming from the checkpoint of epoch {saved + 1}: "
                  f"continuing at epoch {saved + 2}/{self.params['epochs']}", flush=True)
        if self._csv:
            keep_history_before(self.history, saved + 1 if saved >= 0 else self.initial_epoch)
            self._csv.on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        if self._csv:
            self._csv.on_epoch_end(epoch, logs)
        super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        if self._csv:
            self._csv.on_train_end(logs)
        super().on_train_end(logs)


def keep_history_before(history: Path, epoch: int) -> None:
    """Drop history.csv's rows of `epoch` (counted from 0) and later, and a row cut short by a kill
    (a fresh run, epoch 0, drops the history of the model it replaces)."""
    if not history.is_file():
        return
    with history.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames
        rows = [row for row in reader if row.get("epoch", "").isdigit() and int(row["epoch"]) < epoch
                and None not in row and all(value is not None for value in row.values())]
    if not fields or not rows:  # nothing kept: the logger starts the file with its own columns
        history.unlink()
        return
    with history.open("w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)


class Snapshots(keras.callbacks.Callback):
    """Every `every` epochs, `save(k)` for the k-th snapshot (counted from 1): the end of a cosine
    cycle of a snapshot ensemble. Goes before ResumeFromBackup, so a snapshot is on disk before its
    epoch counts as done (a kill between the two reruns the epoch and writes it again)."""

    def __init__(self, every: int, save):
        super().__init__()
        self.every, self.save = every, save

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self.save((epoch + 1) // self.every)


class DivergenceGuard(keras.callbacks.Callback):
    """Stop training when the loss exceeds `factor` x its first value or stops being finite.

    Keras reports the running mean of the epoch's batch losses, so a blow-up shows with a delay
    of a few steps, and NaN at once. `tripped` says where and why, for the trainer to report."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor
        self.first: float | None = None
        self.tripped: str | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or self.tripped:
            return
        loss = float(loss)
        if self.first is None and math.isfinite(loss):
            self.first = loss
            return
        if not math.isfinite(loss):
            why = f"the loss became {loss}"
        elif loss > self.factor * self.first:
            why = f"the loss reached {loss:.4g}, more than {self.factor:g} x its first value {self.first:.4g}"
        else:
            return
        self.tripped = f"epoch {self._epoch + 1}, step {batch + 1}: {why}"
        self.model.stop_training = True


class UpdateRatio(keras.callbacks.Callback):
    """Every `every` steps, the ratio |weight update| / |weight| of each kernel (Karpathy's rule
    of thumb: about 1e-3 is healthy; far above, the rate is too high; far below, too low), logged
    to TensorBoard as update_ratio/<kernel> with the median and max, and the last median added to
    the epoch's logs (history.csv) as update_ratio."""

    def __init__(self, log_dir: Path, every: int):
        super().__init__()
        self.every = every
        self.writer = tf.summary.create_file_writer(str(log_dir))
        self._before: dict[str, np.ndarray] | None = None
        self.last: dict[str, float] = {}

    def _kernels(self):
        return [v for v in self.model.trainable_weights if len(v.shape) >= 2]

    def on_train_batch_begin(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) % self.every == 0:
            self._before = {v.name: v.numpy() for v in self._kernels()}

    def on_train_batch_end(self, batch, logs=None):
        if self._before is None:
            return
        step = int(self.model.optimizer.iterations.numpy())
        ratios = {}
        for v in self._kernels():
            before = self._before.get(v.name)
            norm = float(np.linalg.norm(before)) if before is not None else 0.0
            if norm > 0:
                ratios[v.name.split(":")[0]] = float(np.linalg.norm(v.numpy() - before)) / norm
        self._before = None
        if not ratios:
            return
        self.last = ratios
        values = np.array(list(ratios.values()))
        with self.writer.as_default(step=step):
            for name, ratio in ratios.items():
                tf.summary.scalar(f"update_ratio/{name}", ratio)
            tf.summary.scalar("update_ratio_summary/median", float(np.median(values)))
            tf.summary.scalar("update_ratio_summary/max", float(values.max()))
        self.writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["update_ratio"] = float(np.median(list(self.last.values()))) if self.last else float("nan")
