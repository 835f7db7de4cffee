"""Images per second of the augmented detection input pipeline against the training step it feeds.

    python benchmarks/input_pipeline.py [--config configs/detection/yolov3_tiny.yaml] [--steps 30]

Both are measured in this run on the quickstart detector config: the input side is exactly what
training reads (the task's `training_batches`: decode, letterbox, the config's augmentation, clipping, the
per-anchor target encoding, batching), drained alone; the training side is the model's
`train_on_batch` on batches taken from that pipeline beforehand, so it measures the step and
nothing else. The input pipeline must be at least 3x faster, or training waits for data
(issue 3). Each side runs its warm-up (tracing, the first shuffle buffer) before the clock starts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tfpipe  # noqa: E402,F401  (Keras-2 switch before TensorFlow)
from tfpipe import models, tasks  # noqa: E402
from tfpipe.config import load_config  # noqa: E402
from tfpipe.train.trainer import compile_for_training  # noqa: E402

WARMUP = 3  # batches (steps) before timing


def input_throughput(dataset, batches: int, batch_size: int) -> float:
    iterator = iter(dataset.repeat())
    for _ in range(WARMUP):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def step_throughput(model, batches: list, batch_size: int) -> float:
    for x, y in batches[:WARMUP]:
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for x, y in batches[WARMUP:]:
        model.train_on_batch(x, y)
    return (len(batches) - WARMUP) * batch_size / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "detection" / "yolov3_tiny.yaml")
    parser.add_argument("--steps", type=int, default=30, help="timed batches on each side")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    task = tasks.of(cfg)
    splits = task.load_splits(cfg)
    model = task.training_view(models.build(cfg.model, cfg.task, len(splits.class_names)), cfg)  # as fit() trains it
    compile_for_training(model, cfg, len(splits.class_names), cfg.train.learning_rate)
    train_ds, _ = task.training_batches(cfg, splits, cfg.preprocess_spec(), model)
    batch = cfg.train.batch_size
    pipeline = input_throughput(train_ds, args.steps, batch)
    batches = list(train_ds.take(WARMUP + args.steps).as_numpy_iterator())
    training = step_throughput(model, batches, batch)
    print(f"{cfg.name} ({cfg.model.name}, {cfg.model.input_size[0]}x{cfg.model.input_size[1]}, batch {batch}, "
          f"augment: flip={cfg.augment.horizontal_flip} jitter={cfg.augment.jitter_scale}):")
    print(f"  augmented input pipeline  {pipeline:8.1f} images/s")
    print(f"  training step             {training:8.1f} images/s")
    print(f"  input / training          {pipeline / training:8.2f}x  (needs >= 3x)")
    return 0 if pipeline >= 3 * training else 1


if __name__ == "__main__":
    sys.exit(main())
