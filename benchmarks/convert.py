"""int8 against fp32 for every zoo classifier: latency ratio and size ratio, measured in one run.

    python benchmarks/convert.py [--workdir runs] [--runs 200] [--models resnet18 ...]

For each configs/zoo/*.yaml it takes the zoo run's model_fp32/model_int8.tflite when
`--workdir` holds them (the trained, QAT-converted files docs/zoo.md reports); otherwise it builds
the network untrained at the configured size and converts it here, fp32 and int8 by calibration on
random inputs (latency and size do not depend on the weights' values). The two files of a model
are timed alternately, one thread, so both see the same machine state; it prints the median
milliseconds of each and the int8/fp32 ratios of latency and of file size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tfpipe  # noqa: E402,F401  (Keras-2 switch before TensorFlow)
from tfpipe.config import load_config  # noqa: E402
from tfpipe.runtime import Worker  # noqa: E402


def model_files(cfg, workdir: Path | None, scratch: Path) -> tuple[dict[str, Path], str]:
    if workdir is not None:
        found = {q: workdir / cfg.name / "export" / f"model_{q}.tflite" for q in ("fp32", "int8")}
        if all(p.is_file() for p in found.values()):
            return found, "trained run"
    from tfpipe import models
    from tfpipe.convert.tflite import to_tflite

    model = models.build(cfg.model, cfg.task, 10)
    h, w = cfg.model.input_size
    calibration = np.random.default_rng(0).uniform(-1, 1, (16, h, w, cfg.model.channels)).astype(np.float32)
    files = {}
    for label, mode in (("fp32", "none"), ("int8", "int8")):
        files[label] = scratch / f"{cfg.name}_{label}.tflite"
        files[label].write_bytes(to_tflite(model, mode, cfg.convert.io_dtype, calibration))
    return files, "untrained, converted here"


def time_pair(files: dict[str, Path], runs: int, rounds: int = 5) -> dict[str, float]:
    """Median ms per image of each file: `rounds` alternating blocks of runs/rounds invocations."""
    times: dict[str, list[float]] = {label: [] for label in files}
    workers = {label: Worker(path, threads=1) for label, path in files.items()}
    try:
        inputs = {label: {name: np.zeros((1, *spec["shape"][1:]), np.float32) for name, spec in w.inputs.items()}
                  for label, w in workers.items()}
        for _ in range(rounds):
            for label, worker in workers.items():
                times[label] += worker.latency(inputs[label], warmup=5, runs=max(1, runs // rounds))
    finally:
        for worker in workers.values():
            worker.close()
    return {label: 1000 * statistics.median(t) for label, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="where the zoo runs are (scripts/zoo.py --workdir)")
    parser.add_argument("--runs", type=int, default=200, help="timed single-image invocations per model file")
    parser.add_argument("--models", nargs="*", default=None, help="config names under configs/zoo (default: all)")
    args = parser.parse_args(argv)
    configs = sorted(p for p in (REPO / "configs" / "zoo").glob("*.yaml") if not p.stem.startswith("_"))
    if args.models:
        configs = [p for p in configs if p.stem in args.models]
    print(f"{'model':<22} {'source':<27} {'fp32 ms':>8} {'int8 ms':>8} {'latency int8/fp32':>18} "
          f"{'fp32 KiB':>9} {'int8 KiB':>9} {'size int8/fp32':>15}")
    with tempfile.TemporaryDirectory() as scratch:
        for path in configs:
            cfg = load_config(path)
            files, source = model_files(cfg, args.workdir, Path(scratch))
            ms = time_pair(files, args.runs)
            size = {label: p.stat().st_size / 1024 for label, p in files.items()}
            print(f"{path.stem:<22} {source:<27} {ms['fp32']:>8.2f} {ms['int8']:>8.2f} "
                  f"{ms['int8'] / ms['fp32']:>18.2f} {size['fp32']:>9.0f} {size['int8']:>9.0f} "
                  f"{size['int8'] / size['fp32']:>15.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
