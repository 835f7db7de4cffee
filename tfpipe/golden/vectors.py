"""Golden vectors: what the Python pipeline feeds a bundle's model and what it reads back, for the
device-side implementations (the Android app's Kotlin core) to reproduce exactly.

For `count` images of the run's evaluation split, golden.json holds:
- `pixels`: the image as decoded (uint8, [h, w, c]), the input of the device's preprocessing;
- `input`: the model input tensor exactly as fed, in the model's input dtype (quantized with the
  input's scale and zero point for an integer model), produced by tfpipe.runtime's preprocessing;
- `outputs`: every output tensor as the interpreter returned it (raw integers for a quantized
  output, with its scale and zero point);
- `expected`: the decoded prediction (tfpipe.runtime.bundle, the evaluator's decoding): top-k
  classes and scores; boxes (x1, y1, x2, y2 in the image's pixels), classes and scores in order;
  the class map at the image's size; or instances: the boxes, their masks [N, h, w] pasted at the
  image's size and keypoints [N, K, 3].
Arrays are flat lists in row-major order next to their shape and dtype.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe import io
from tfpipe.errors import TfpipeError

FORMAT = "tfpipe-golden/1"


def _array(x: np.ndarray, **extra) -> dict:
    x = np.asarray(x)
    return {"dtype": x.dtype.name, "shape": list(x.shape), **extra, "data": x.reshape(-1).tolist()}


def images_of(cfg, count: int) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 pixels [h, w, c]) of the first `count` images of the run's evaluation split."""
    from tfpipe import tasks

    splits = tasks.of(cfg).load_splits(cfg)
    return splits.test.originals(count, splits.test_name)


def golden(run_root: Path, model: str = "int8", count: int = 8, top_k: int = 3) -> dict:
    from tfpipe.config import load_config
    from tfpipe.rundir import RunDir
    from tfpipe.runtime.bundle import Bundle
    from tfpipe.runtime.model import TFLiteModel, image_input
    from tfpipe.runtime.quant import dequantize, quantize

    config = run_root / "config.yaml"
    if not config.is_file():
        raise TfpipeError(f"{config}: no such file", "--run takes a run folder (runs/NAME, made by tfpipe.train)")
    cfg = load_config(config)
    run = RunDir(run_root)
    bundle = Bundle(run.export, model)
    interpreter = TFLiteModel(str(bundle.model_file))
    input_name = image_input(interpreter.inputs, bundle.model_file)
    spec = interpreter.inputs[input_name]
    samples = []
    for name, pixels in images_of(cfg, count):
        x = quantize(bundle.input_of(pixels), spec["dtype"], spec["scale"], spec["zero_point"])
        raw = interpreter.runner(**{input_name: x})
        outputs = {k: dequantize(v, interpreter.outputs[k]["scale"], interpreter.outputs[k]["zero_point"])
                   for k, v in raw.items()}
        prediction = bundle.decode(outputs, pixels.shape[:2], top_k)
        expected = {k: _array(v) if isinstance(v, np.ndarray) else v for k, v in prediction.to_json().items()}
        samples.append({
            "name": name,
            "pixels": _array(pixels),
            "input": _array(x, name=input_name, scale=spec["scale"], zero_point=spec["zero_point"]),
            "outputs": {k: _array(v, scale=interpreter.outputs[k]["scale"],
                                  zero_point=interpreter.outputs[k]["zero_point"]) for k, v in sorted(raw.items())},
            "expected": expected,
        })
    return {"format": FORMAT, "task": bundle.task, "model": model, "model_file": bundle.model_file.name,
            "classes": bundle.classes, "preprocess": bundle.spec.to_json(), "top_k": top_k,
            "detection": {k: v for k, v in bundle.meta.get("detection", {}).items() if k != "box_coding"},
            "instance": {k: v for k, v in bundle.meta.get("instance", {}).items()
                         if k in ("mask_threshold", "keypoints")},
            "samples": samples}


def write(run_root: Path, out: Path | None, model: str, count: int) -> Path:
    data = golden(run_root, model, count)
    from tfpipe.rundir import RunDir

    path = out or RunDir(run_root).export / f"golden_{model}.json"
    return io.write_json(path, data)
