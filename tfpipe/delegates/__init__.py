"""Delegate checks: what of a .tflite runs on the Edge TPU, the GPU delegate or NNAPI.

`check(path, target)` returns a JSON-ready report; `write(report, path)` stores it beside the
model as compat_<target>.json (compat_<target>_<model>.json when the export holds several
models). Every figure is a prediction from documented tables, except the Edge TPU compiler's own
log when `edgetpu_compiler` is installed.
"""

from __future__ import annotations

from pathlib import Path

from tfpipe import io
from tfpipe.runtime.client import check_tflite_file

TARGETS = ("edgetpu", "gpu", "nnapi")
FORMAT = "tfpipe-compat/1"


def _module(target: str):
    from tfpipe.delegates import edgetpu, gpu, nnapi

    return {"edgetpu": edgetpu, "gpu": gpu, "nnapi": nnapi}[target]


def check(path: str | Path, target: str) -> dict:
    path = check_tflite_file(path)
    report = _module(target).check(path)
    return {"format": FORMAT, "target": target, "model": path.name, "prediction": True, **report}


def report_path(model: Path, target: str) -> Path:
    """compat_<target>.json for the run's int8 model (the one each target runs), else per model."""
    name = f"compat_{target}.json" if model.stem == "model_int8" else f"compat_{target}_{model.stem}.json"
    return model.with_name(name)


def write(report: dict, model: Path, folder: Path | None = None) -> Path:
    """The report as JSON beside the model, or in `folder` under the same name."""
    path = report_path(model, report["target"])
    path = folder / path.name if folder is not None else path
    io.write_json(path, report)
    return path


def summary_lines(report: dict) -> list[str]:
    return _module(report["target"]).summary_lines(report)
