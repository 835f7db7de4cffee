"""`tfpipe <stage> ...` and `python -m tfpipe <stage> ...`: the same commands as `python -m tfpipe.<stage>`."""

from __future__ import annotations

import importlib
import sys

STAGES = {
    "train": "tfpipe.train.__main__",
    "qat": "tfpipe.qat.__main__",
    "convert": "tfpipe.convert.__main__",
    "check": "tfpipe.check",
    "evaluate": "tfpipe.evaluate.__main__",
    "run": "tfpipe.run",
    "search": "tfpipe.search",
    "doctor": "tfpipe.doctor",
    "data": "tfpipe.data.__main__",
    "models": "tfpipe.models.__main__",
    "golden": "tfpipe.golden.__main__",
}

USAGE = """usage: tfpipe <stage> [--help] [options]

stages:
  train      train the float model                    python -m tfpipe.train
  qat        quantization-aware fine-tuning           python -m tfpipe.qat
  convert    write TFLite models and the bundle        python -m tfpipe.convert --quantize int8
  check      what runs on Edge TPU / GPU / NNAPI      python -m tfpipe.check MODEL.tflite
  evaluate   parity of every .tflite with the float    python -m tfpipe.evaluate
  run        train -> qat -> convert -> evaluate       python -m tfpipe.run
  search     learning-rate search, coarse then fine    python -m tfpipe.search --trials 8
  doctor     versions, datasets, runtimes, tools       python -m tfpipe.doctor
  data       convert annotation formats; inspect      python -m tfpipe.data inspect
  models     the zoo: names, sizes, feature strides   python -m tfpipe.models list
  golden     golden vectors of a bundle for devices   python -m tfpipe.golden --run runs/X
"""


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        sys.exit(0 if argv else 2)
    if argv[0] not in STAGES:
        print(f"tfpipe: error: unknown stage {argv[0]!r} (use one of: {', '.join(STAGES)})", file=sys.stderr)
        sys.exit(2)
    from tfpipe.cli import main as run_stage

    run_stage(importlib.import_module(STAGES[argv[0]]).STAGE, argv[1:])


if __name__ == "__main__":
    main()
