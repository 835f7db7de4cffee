"""Training-step time of grouped-convolution networks with tf_keras' XLA path and with the plain
(oneDNN) kernel tfpipe.backend switches to, side by side.

    python benchmarks/grouped_conv.py [--models resnext50_32x4d shufflenet_v1_g3] [--batch 64] [--steps 3]

For each model (32x32x1 input, 10 classes, as configs/zoo), it builds the network once and times
`--steps` training steps with each path, alternating them `--repeats` times so both see the same
machine state; it prints the median seconds per step of each and the ratio XLA / plain.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tf_keras.src.layers.convolutional.base_conv import Conv  # noqa: E402

from tfpipe import models  # noqa: E402
from tfpipe.backend import keras  # noqa: E402
from tfpipe.config import ModelConfig  # noqa: E402


def step_seconds(model, x, y, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnext50_32x4d", "shufflenet_v1_g3"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    plain, through_xla = Conv._jit_compiled_convolution_op, Conv._jit_compiled_convolution_op_through_xla
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 32, 32, 1), np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 10, args.batch), 10)
    print(f"{'model':20s} {'plain s/step':>13s} {'XLA s/step':>11s} {'XLA / plain':>12s}")
    for name in args.models:
        times = {"plain": [], "xla": []}
        compiled = {}
        for path, op in (("plain", plain), ("xla", through_xla)):
            Conv._jit_compiled_convolution_op = op  # each model traces its own train function
            model = models.build(ModelConfig(name, (32, 32), 1), "classification", 10)
            model.compile(keras.optimizers.SGD(0.01), "categorical_crossentropy")
            model.train_on_batch(x, y)  # trace (and, for XLA, compile) outside the timing
            compiled[path] = model
        Conv._jit_compiled_convolution_op = plain
        for _ in range(args.repeats):
            for path in ("plain", "xla"):
                times[path].append(step_seconds(compiled[path], x, y, args.steps))
        p, q = statistics.median(times["plain"]), statistics.median(times["xla"])
        print(f"{name:20s} {p:13.3f} {q:11.3f} {q / p:11.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
