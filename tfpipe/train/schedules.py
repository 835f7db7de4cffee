"""Learning-rate schedules from the lectures: linear warm-up, then cosine decay or step decay."""

from __future__ import annotations

from tfpipe.backend import keras, tf
from tfpipe.config import TrainConfig


def warmup_cosine(peak: float, total_steps: int, warmup_steps: int):
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then cosine decay to 0 at `total_steps`."""
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else peak,
        decay_steps=max(1, total_steps - warmup_steps),
        alpha=0.0,
        warmup_target=peak if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


@keras.utils.register_keras_serializable(package="tfpipe")
class WarmupStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak`, then `peak` x factor^k after the k-th boundary (in steps).

    `offset` is added to the optimizer's step count: after transfer learning unfreezes, a new
    optimizer starts at step 0 but the boundaries stay counted from the start of training."""

    def __init__(self, peak: float, warmup_steps: int, boundaries: list[int], factor: float, offset: int = 0):
        self.peak, self.warmup_steps, self.factor, self.offset = peak, warmup_steps, factor, offset
        self.boundaries = list(boundaries)

    def __call__(self, step):
        step = tf.cast(step, tf.float32) + self.offset
        drops = tf.add_n([tf.cast(step >= b, tf.float32) for b in self.boundaries]) if self.boundaries else 0.0
        rate = self.peak * tf.pow(self.factor, drops)
        if self.warmup_steps:
            rate = tf.where(step < self.warmup_steps, self.peak * step / self.warmup_steps, rate)
        return rate

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "boundaries": self.boundaries,
                "factor": self.factor, "offset": self.offset}


@keras.utils.register_keras_serializable(package="tfpipe")
class CyclicCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Snapshot ensembles' schedule (Huang et al., ICLR 2017, eq. 2): the rate restarts at `peak`
    every `cycle_steps` and falls by a cosine to 0 at the cycle's end, where a snapshot is taken;
    the first `warmup_steps` rise linearly from 0 instead."""

    def __init__(self, peak: float, cycle_steps: int, warmup_steps: int = 0):
        self.peak, self.cycle_steps, self.warmup_steps = peak, cycle_steps, warmup_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        within = tf.math.floormod(step, float(self.cycle_steps)) / self.cycle_steps
        rate = 0.5 * self.peak * (1.0 + tf.cos(3.141592653589793 * within))
        if self.warmup_steps:
            rate = tf.where(step < self.warmup_steps, self.peak * step / self.warmup_steps, rate)
        return rate

    def get_config(self):
        return {"peak": self.peak, "cycle_steps": self.cycle_steps, "warmup_steps": self.warmup_steps}


def make_schedule(cfg: TrainConfig, steps_per_epoch: int, *, first_epoch: int = 0, last_epoch: int | None = None,
                  peak: float | None = None, warmup: bool = True):
    """The configured schedule for epochs [first_epoch, last_epoch) of training.

    Cosine runs its own decay to zero over those epochs; step decay keeps the configured epochs
    (`decay_epochs` count from the start of training)."""
    last_epoch = cfg.epochs if last_epoch is None else last_epoch
    peak = cfg.learning_rate if peak is None else peak
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch) if warmup else 0
    if cfg.snapshots > 1:
        return CyclicCosine(peak, (last_epoch - first_epoch) // cfg.snapshots * steps_per_epoch, warmup_steps)
    if cfg.schedule == "step":
        return WarmupStepDecay(peak, warmup_steps, [e * steps_per_epoch for e in cfg.decay_epochs], cfg.decay_factor,
                               offset=first_epoch * steps_per_epoch)
    return warmup_cosine(peak, (last_epoch - first_epoch) * steps_per_epoch, warmup_steps)
