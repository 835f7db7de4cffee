"""Training images/s of one process against a cluster of local worker processes, the bytes each
worker exchanges per step, and what that predicts for real hosts.

    python benchmarks/multiworker.py [--config configs/quickstart.yaml] [--workers 2] [--steps 30]

Both sides run in this run, on the same config and global batch: one process with the default
strategy, then `--workers` processes of one MultiWorkerMirroredStrategy cluster on 127.0.0.1 (as
`python -m tfpipe.train --workers N` starts them), each timing `--steps` training steps of the
trainer's own pieces (the task's training batches sharded as the trainer shards them, its compiled
losses) after a warm-up. On one machine the workers share its cores, so expect no speed-up: the
point there is correctness (tests/integration/test_multiworker.py).

Bytes per step: a ring all-reduce (TensorFlow's collective implementation on CPUs) makes each
worker send, and receive, 2 (N-1)/N times the gradient (4 bytes per trainable weight) every step;
nothing else crosses the network per step (BatchNorm's moving statistics are averaged only when
read). The estimate for N hosts at a bandwidth: a step takes t1/N of computation (each host has
1/N of the global batch, at this machine's speed) plus the all-reduce's bytes over the link, with
no overlap of the two (tf_keras reduces after the whole backward pass): speed-up =
t1 / (t1/N + 2 (N-1)/N x gradient bits / bandwidth). Latency per message is left out, so for small
models it is an upper bound.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tfpipe  # noqa: E402,F401  (Keras-2 switch before TensorFlow)

WARMUP = 5  # steps before the clock starts (tracing, the first shuffle buffer)
RESULT = "RESULT "


def worker(config: Path, steps: int) -> None:
    """One process of the measurement: trains `steps` steps and, on the chief, prints its result."""
    from tfpipe.train import cluster

    strategy_name = "multiworker" if os.environ.get(cluster.ENV) else "default"
    cluster.prepare(strategy_name)  # before TensorFlow starts

    from tfpipe import models, tasks
    from tfpipe.backend import keras
    from tfpipe.config import load_config
    from tfpipe.train.trainer import compile_for_training, distribution, shard_by_data

    cfg = load_config(config)
    task = tasks.of(cfg)
    splits = task.load_splits(cfg)
    strategy = distribution(strategy_name)
    keras.utils.set_random_seed(cfg.train.seed)
    with strategy.scope():
        model = task.training_view(models.build(cfg.model, cfg.task, len(splits.class_names)), cfg)
        compile_for_training(model, cfg, len(splits.class_names), cfg.train.learning_rate)
    train_ds, _ = task.training_batches(cfg, splits, cfg.preprocess_spec(), model)
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter())

    model.fit(shard_by_data(train_ds).repeat(), epochs=1, steps_per_epoch=WARMUP + steps, verbose=0,
              callbacks=[Clock()])
    seconds = (times[-1] - times[WARMUP - 1]) / steps
    if cluster.is_chief():
        weights = sum(int(v.shape.num_elements()) for v in model.trainable_weights)
        print(RESULT + json.dumps({"step_s": seconds, "batch": cfg.train.batch_size, "weights": weights,
                                   "replicas": strategy.num_replicas_in_sync, "model": cfg.model.name}), flush=True)


def measure(config: Path, steps: int, tf_configs: list[str | None]) -> dict:
    """Start one process per entry (a TF_CONFIG, or None for a lone process) and return the chief's result."""
    command = [sys.executable, __file__, "--worker", "--config", str(config), "--steps", str(steps)]
    processes = []
    for tf_config in tf_configs:
        env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
        if tf_config:
            env["TF_CONFIG"] = tf_config
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate() for p in processes]
    for p, (_, err) in zip(processes, outputs, strict=True):
        if p.returncode:
            sys.exit(f"a measuring process failed ({p.returncode}):\n{err[-2000:]}")
    lines = [line for out, _ in outputs for line in out.splitlines() if line.startswith(RESULT)]
    return json.loads(lines[0][len(RESULT):])


def speedup(step_s: float, gradient_bytes: int, hosts: int, gbit_s: float) -> float:
    exchanged = 2 * (hosts - 1) / hosts * gradient_bytes
    return step_s / (step_s / hosts + exchanged * 8 / (gbit_s * 1e9))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "quickstart.yaml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30, help="timed steps on each side")
    parser.add_argument("--gbit", type=float, default=10.0, help="host link for the estimate, Gb/s")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.config, args.steps)
        return 0

    from tfpipe.train.cluster import local_tf_configs

    one = measure(args.config, args.steps, [None])
    many = measure(args.config, args.steps, local_tf_configs(args.workers))
    batch, gradient = one["batch"], 4 * one["weights"]
    print(f"{one['model']} ({one['weights']:,} trainable weights), global batch {batch}, {os.cpu_count()} cores, "
          f"{args.steps} timed steps each\n")
    print("| run | processes | replicas | step ms | images/s | bytes sent per worker per step |")
    print("|---|---|---|---|---|---|")
    for name, result, n in (("one process", one, 1), (f"{args.workers} local workers", many, args.workers)):
        sent = 2 * (n - 1) / n * gradient
        print(f"| {name} | {n} | {result['replicas']} | {1000 * result['step_s']:.1f} | "
              f"{batch / result['step_s']:.0f} | {sent / 1e6:.2f} MB |")
    print(f"\n{args.workers} workers / one process, images/s: {one['step_s'] / many['step_s']:.2f}x")
    print(f"\nEstimate for hosts like this machine on a {args.gbit:g} Gb/s link (ring all-reduce of "
          f"{gradient / 1e6:.2f} MB of gradient, no overlap, no per-message latency):")
    print("| hosts | bytes sent per host per step | all-reduce ms | compute ms | speed-up |")
    print("|---|---|---|---|---|")
    for hosts in (2, 8):
        sent = 2 * (hosts - 1) / hosts * gradient
        print(f"| {hosts} | {sent / 1e6:.2f} MB | {1000 * sent * 8 / (args.gbit * 1e9):.2f} | "
              f"{1000 * one['step_s'] / hosts:.1f} | {speedup(one['step_s'], gradient, hosts, args.gbit):.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
