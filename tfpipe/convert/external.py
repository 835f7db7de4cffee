"""`convert --model PATH`: a Keras model tfpipe did not build, imported into a run and converted.

The model (.keras, .h5 or a Keras SavedModel directory) becomes the float model of the run
WORKDIR/<file stem>, whose config.yaml records `model.name: external`, the input size read from
the model and the preprocess used for calibration. Calibration data is either

- a tfpipe config (YAML): its dataset's training images through its preprocess; the labels then
  let `python -m tfpipe.evaluate --config WORKDIR/<stem>/config.yaml` verify the import, or
- a folder of images (searched recursively), through the preprocess the command states
  (default: scale 1/127.5, offset -1, letterbox; `--set preprocess.*` changes it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from tfpipe import io
from tfpipe.config import Config, ModelConfig, load_config
from tfpipe.data.preprocess import PreprocessSpec, preprocess
from tfpipe.errors import TfpipeError
from tfpipe.models.registry import EXTERNAL
from tfpipe.rundir import RunDir

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def load_keras_model(path: Path):
    from tfpipe.backend import keras

    if not path.exists():
        raise TfpipeError(f"--model: {path} does not exist", "give a .keras or .h5 file, or a SavedModel directory")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types (OSError, ValueError, TypeError) for a bad file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TfpipeError(f"--model: {path}: cannot be loaded as a Keras model ({first[:200]})",
                          "give a .keras or .h5 file, or a SavedModel directory saved by Keras 2; custom layers "
                          "must be importable") from None


def input_size(model, path: Path, given: tuple[int, int] | None) -> tuple[int, int, int]:
    """(height, width, channels) of the model's single image input; --input-size fills unknown ones."""
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    if len(shapes) != 1 or len(shapes[0]) != 4:
        raise TfpipeError(f"--model: {path}: input shape {model.input_shape} is not one image batch [N, H, W, C]",
                          "tfpipe converts single-input image models")
    _, h, w, c = shapes[0]
    if c is None:
        raise TfpipeError(f"--model: {path}: the input's channel count is unknown ({shapes[0]})",
                          "save the model with a fixed number of input channels")
    if given:
        if (h, w) != (None, None) and (h, w) != tuple(given):
            raise TfpipeError(f"--input-size {given[0]} {given[1]}: {path} has a fixed input of {h}x{w}",
                              "leave --input-size out, or give the model's own size")
        h, w = given
    if h is None or w is None:
        raise TfpipeError(f"--model: {path}: input shape {shapes[0]} has no fixed height and width",
                          "give the size to convert at: --input-size H W")
    return int(h), int(w), int(c)


def _folder_images(folder: Path, spec: PreprocessSpec, count: int, seed: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise TfpipeError(f"--calibration-data: {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})",
                          "give a folder of representative images, or a tfpipe config")
    rng = np.random.default_rng(seed)
    chosen = [files[i] for i in np.sort(rng.choice(len(files), size=min(count, len(files)), replace=False))]
    inputs = []
    for path in chosen:
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("L" if spec.channels == 1 else "RGB"), np.float32)
        except (OSError, UnidentifiedImageError) as e:
            raise TfpipeError(f"--calibration-data: {path}: unreadable image ({e})",
                              "remove or replace the file") from None
        inputs.append(preprocess(pixels.reshape(*pixels.shape[:2], spec.channels), spec).numpy())
    return np.stack(inputs)


def import_model(model_path: Path, calibration: Path, workdir: Path, overrides: list[str],
                 given_size: tuple[int, int] | None, default_config: Path) -> tuple[Config, RunDir, tuple | None]:
    """Load and check the model, write it as the float model of WORKDIR/<stem> with its config.
    Returns (config, run, folder calibration as (inputs, class names) or None for a config)."""
    model = load_keras_model(model_path)
    h, w, c = input_size(model, model_path, given_size)
    from_config = calibration.suffix.lower() in (".yaml", ".yml")
    if from_config and not calibration.is_file():
        raise TfpipeError(f"--calibration-data: {calibration} does not exist", "give a tfpipe config or a folder")
    if not from_config and not calibration.is_dir():
        raise TfpipeError(f"--calibration-data: {calibration} is neither a folder of images nor a YAML config",
                          "give a folder of representative images, or a tfpipe config (.yaml)")
    cfg = load_config(calibration if from_config else default_config, overrides)
    name = model_path.stem if model_path.is_file() else model_path.name
    cfg = dataclasses.replace(cfg, name=name, model=ModelConfig(EXTERNAL, (h, w), c))
    outputs = model.output_shape[-1] if not isinstance(model.output_shape, list) else None
    run = RunDir.for_config(cfg, workdir)
    images = None
    if not from_config:
        spec = PreprocessSpec.from_config(cfg)
        print(f"Calibration: images from {calibration}, preprocess {spec.resize} to {h}x{w}x{c}, "
              f"x * {spec.scale:g} + {spec.offset:g} (change with --set preprocess.*)", flush=True)
        names = tuple(str(i) for i in range(outputs or 0))
        images = (_folder_images(calibration, spec, cfg.convert.calibration_samples, cfg.train.seed), names)
    run.write_config(cfg)
    io.write_with(run.float_model, lambda tmp: model.save(tmp))
    io.write_json(run.train / "imported.json", {"source": str(model_path.resolve()), "input": [h, w, c]})
    print(f"Imported {model_path} ({model.count_params():,} parameters, input {h}x{w}x{c}) as {run.float_model}",
          flush=True)
    return cfg, run, images
