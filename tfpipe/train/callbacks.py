"""The trainer's callbacks: resume after a kill, snapshots, the divergence guard, the update/weight
ratio and per-layer activation and gradient statistics."""

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
            keep_rows_before(self.history, saved + 1 if saved >= 0 else self.initial_epoch)
            self._csv.on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        if self._csv:
            self._csv.on_epoch_end(epoch, logs)
        super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        if self._csv:
            self._csv.on_train_end(logs)
        super().on_train_end(logs)


def keep_rows_before(path: Path, before: int, column: str = "epoch") -> None:
    """Drop a log's rows whose `column` (history.csv's epoch, counted from 0, or a per-step log's
    step) is `before` or later, and a row cut short by a kill; a fresh run (0) drops them all, and
    the file goes when nothing is kept (its logger starts it again with its own columns)."""
    if not path.is_file():
        return
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames
        rows = [row for row in reader if row.get(column, "").isdigit() and int(row[column]) < before
                and None not in row and all(value is not None for value in row.values())]
    if not fields or not rows:
        path.unlink()
        return
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)


def append_rows(path: Path, fields: tuple[str, ...], rows: list[dict]) -> None:
    """Append rows to a per-step log, its header first when the file is new."""
    new = not path.is_file()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fields)
        if new:
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
    to TensorBoard as update_ratio/<kernel> with the median and max, to `csv` (step, kernel,
    ratio; the report plots each kernel over time), and the last median added to the epoch's logs
    (history.csv) as update_ratio."""

    def __init__(self, log_dir: Path, every: int, csv_path: Path | None = None):
        super().__init__()
        self.every, self.csv_path = every, csv_path
        self.writer = tf.summary.create_file_writer(str(log_dir))
        self._before: dict[str, np.ndarray] | None = None
        self.last: dict[str, float] = {}

    def on_train_begin(self, logs=None):
        if self.csv_path:  # a resumed run measures the steps after its checkpoint again
            keep_rows_before(self.csv_path, int(self.model.optimizer.iterations.numpy()), "step")

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
        if self.csv_path:
            append_rows(self.csv_path, ("step", "kernel", "ratio"),
                        [{"step": step, "kernel": name, "ratio": ratio} for name, ratio in ratios.items()])

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["update_ratio"] = float(np.median(list(self.last.values()))) if self.last else float("nan")


_ACTIVATION_LAYERS = (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.PReLU, keras.layers.ELU,
                      keras.layers.Activation)


def watched_layers(model) -> list:
    """The layers whose statistics tell how training goes: every activation layer and every layer
    with a kernel (convolutions, dense), in network order."""
    return [layer for layer in model.layers
            if isinstance(layer, _ACTIVATION_LAYERS) or any(w.name.endswith(("kernel:0", "depthwise_kernel:0"))
                                                          for w in layer.trainable_weights)]


def _kernel(layer):
    kernels = [w for w in layer.trainable_weights if w.name.endswith(("kernel:0", "depthwise_kernel:0"))]
    return kernels[0] if kernels else None


def statistics(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, std, share of exact zeros) of an array."""
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std()), float(np.mean(values == 0))


class LayerStatistics(keras.callbacks.Callback):
    """Every `every` steps, on one fixed batch (`probe`: the trainer gives the first validation batch,
    so steps compare and the training pipeline's order is untouched): per layer, the
    output's mean, std and share of zeros (kind "activation" for activation layers, where a share
    near 1 is a dead ReLU, "output" for convolutions and dense layers), and per kernel the loss
    gradient's mean and std (kind "gradient": vanishing or exploding gradients show along the
    depth). Histograms go to TensorBoard (layer_stats/...), the figures to `csv` (step, layer,
    kind, mean, std, zero_share), which the report plots. Evaluated in training mode, as the step
    sees the network (BatchNorm normalizes by the batch: in inference mode at step 0 its moving
    statistics are still 0 and 1, and the outputs of a deep BatchNorm network vanish with depth);
    the moving statistics (and QAT's ranges) are put back afterwards."""

    FIELDS = ("step", "layer", "kind", "mean", "std", "zero_share")

    def __init__(self, log_dir: Path, csv_path: Path, every: int, probe):
        super().__init__()
        self.every, self.csv_path = every, csv_path
        self.x, self.y = (tf.nest.map_structure(tf.convert_to_tensor, part) for part in probe[:2])
        self.writer = tf.summary.create_file_writer(str(log_dir))
        self._probe_model = None

    def on_train_begin(self, logs=None):
        layers = watched_layers(self.model)
        self._layers = layers
        self._probe_model = keras.Model(self.model.inputs, [layer.output for layer in layers])
        step = int(self.model.optimizer.iterations.numpy())
        keep_rows_before(self.csv_path, step, "step")  # a resumed run writes the steps after its checkpoint again
        self._last = None
        self._measure_at(step)  # here rather than at the first batch, which Keras times and warns about

    def measure(self) -> list[dict]:
        """The rows of one measurement at the current weights."""
        step = int(self.model.optimizer.iterations.numpy())
        kept = [w.numpy() for w in self.model.non_trainable_weights]
        outputs = self._probe_model(self.x, training=True)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        kernels = [_kernel(layer) for layer in self._layers]
        with tf.GradientTape() as tape:
            loss = self.model.compiled_loss(self.y, self.model(self.x, training=True),
                                            regularization_losses=self.model.losses)
        gradients = tape.gradient(loss, [k for k in kernels if k is not None])
        for weight, value in zip(self.model.non_trainable_weights, kept, strict=True):
            weight.assign(value)  # the probe's batch statistics must not move BatchNorm's (or QAT's ranges)
        gradient_of = dict(zip([id(k) for k in kernels if k is not None], gradients, strict=True))
        rows = []
        for layer, output, kernel in zip(self._layers, outputs, kernels, strict=True):
            kind = "activation" if isinstance(layer, _ACTIVATION_LAYERS) else "output"
            rows.append(dict(zip(self.FIELDS, (step, layer.name, kind, *statistics(output)), strict=True)))
            if kernel is not None and gradient_of.get(id(kernel)) is not None:
                grad = np.asarray(gradient_of[id(kernel)])
                rows.append(dict(zip(self.FIELDS, (step, layer.name, "gradient", *statistics(grad)), strict=True)))
        with self.writer.as_default(step=step):
            for layer, output in zip(self._layers, outputs, strict=True):
                tf.summary.histogram(f"layer_stats/activation/{layer.name}", output)
            for layer, kernel in zip(self._layers, kernels, strict=True):
                if kernel is not None and gradient_of.get(id(kernel)) is not None:
                    tf.summary.histogram(f"layer_stats/gradient/{layer.name}", gradient_of[id(kernel)])
        self.writer.flush()
        return rows

    def on_train_batch_begin(self, batch, logs=None):
        self._measure_at(int(self.model.optimizer.iterations.numpy()))

    def _measure_at(self, step: int) -> None:
        if step % self.every or step == self._last:
            return
        self._last = step
        rows = self.measure()
        append_rows(self.csv_path, self.FIELDS, rows)
