"""Images per second of the evaluator's runtime pass with --workers 1 and --workers 2, side by side.

    python benchmarks/evaluate.py [--run runs/quickstart] [--repeats 3]

It times `predict_sharded`, the code `python -m tfpipe.evaluate` runs for every .tflite, over the
full Fashion-MNIST test split (10,000 images), alternating 1 and 2 workers `--repeats` times so
that both see the same machine state, and prints the median images/s of each and their ratio.
The models are the run's model_fp32/model_int8.tflite when it has them; otherwise the quickstart
network is built untrained and converted here (throughput does not depend on the weights).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tfpipe  # noqa: E402,F401  (Keras-2 switch before TensorFlow)
from tfpipe import tasks  # noqa: E402
from tfpipe.config import load_config  # noqa: E402
from tfpipe.evaluate.sharding import predict_sharded  # noqa: E402


def models_to_time(run: Path, cfg, splits, spec, scratch: Path) -> dict[str, Path]:
    found = {q: run / "export" / f"model_{q}.tflite" for q in ("fp32", "int8")}
    if all(p.is_file() for p in found.values()):
        return found
    from tfpipe import models
    from tfpipe.convert.tflite import to_tflite

    print(f"No models in {run / 'export'}: converting the untrained quickstart network", flush=True)
    model = models.build(cfg.model, cfg.task, len(splits.class_names))
    calibration = splits.calibration_inputs(spec, 64)
    made = {}
    for name, mode, io_dtype in (("fp32", "none", "float"), ("int8", "int8", "uint8")):
        made[name] = scratch / f"model_{name}.tflite"
        made[name].write_bytes(to_tflite(model, mode, io_dtype, calibration))
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=REPO / "runs" / "quickstart")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = load_config(REPO / "configs" / "quickstart.yaml", [])
    splits = tasks.of(cfg).load_splits(cfg)
    spec = cfg.preprocess_spec()
    inputs = splits.evaluation_arrays(spec)[0]
    print(f"{len(inputs):,} test images, 1 interpreter thread per worker, {args.repeats} alternating repeats")
    with tempfile.TemporaryDirectory() as scratch:
        files = models_to_time(args.run, cfg, splits, spec, Path(scratch))
        print(f"{'model':<6} {'1 worker img/s':>15} {'2 workers img/s':>16} {'ratio':>6}")
        for name, path in files.items():
            rates: dict[int, list[float]] = {1: [], 2: []}
            outputs = {}
            for _ in range(args.repeats):
                for workers in (1, 2):
                    start = time.perf_counter()
                    result = predict_sharded(path, inputs, workers=workers)
                    rates[workers].append(len(inputs) / (time.perf_counter() - start))
                    outputs[workers] = result.outputs
            for key in outputs[1]:  # sharding must not change a single output value
                np.testing.assert_array_equal(outputs[1][key], outputs[2][key])
            one, two = statistics.median(rates[1]), statistics.median(rates[2])
            print(f"{name:<6} {one:>15,.0f} {two:>16,.0f} {two / one:>5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
