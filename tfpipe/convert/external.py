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
import shutil
from pathlib import Path

import numpy as np

from tfpipe import io
from tfpipe.config import Config, ModelConfig, load_config
from tfpipe.data.formats.records import IMAGE_SUFFIXES
from tfpipe.data.preprocess import preprocess
from tfpipe.errors import TfpipeError
from tfpipe.models.registry import EXTERNAL, MAIN_OUTPUT
from tfpipe.rundir import RunDir
from tfpipe.runtime.contract import PreprocessSpec


def refuse_code_in_h5(path: Path) -> None:
    """A legacy .h5 keeps Lambda layers as marshalled Python bytecode, which Keras runs while
    loading (the .keras format's safe mode refuses it; the H5 loader has none). Read the model's
    JSON config with h5py first and refuse any such layer, before Keras deserializes anything."""
    import json

    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError:
        return  # not HDF5 at all: Keras' own loader names the problem
    if raw is None:
        return
    try:
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError):
        raise TfpipeError(f"--model: {path}: its model_config is not JSON", "re-save the model with Keras") from None

    def code_layers(node) -> list[str]:
        if isinstance(node, list):
            return [name for item in node for name in code_layers(item)]
        if not isinstance(node, dict):
            return []
        inner = node.get("config") if isinstance(node.get("config"), dict) else {}
        if node.get("class_name") == "Lambda" or inner.get("function_type") == "lambda":
            return [str(inner.get("name", node.get("name", "?")))]
        return [name for value in node.values() for name in code_layers(value)]

    found = code_layers(config)
    if found:
        raise TfpipeError(f"--model: {path}: layer {found[0]!r} is a Lambda layer, whose Python code would run on "
                          f"loading" + (f" ({len(found)} such layers)" if len(found) > 1 else ""),
                          "write it as a custom layer class, or save as .keras, whose safe mode refuses Lambda")


def load_keras_model(path: Path):
    from tfpipe.backend import keras

    if not path.exists():
        raise TfpipeError(f"--model: {path} does not exist", "give a .keras or .h5 file, or a SavedModel directory")
    if path.is_file() and path.suffix.lower() in (".h5", ".hdf5"):
        refuse_code_in_h5(path)
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


def main_output(names: list[str], path: Path, wanted: str | None, flag: str = "--model") -> str:
    """The name of the output the task reads (renamed `probabilities` in the run): the only one, or
    the one --output names (`flag` names the import option in errors)."""
    if wanted is not None and wanted not in names:
        raise TfpipeError(f"--output {wanted}: {path} has no such output", f"its outputs: {', '.join(names)}")
    if wanted is None and len(names) > 1:
        raise TfpipeError(f"{flag}: {path} has {len(names)} outputs ({', '.join(names)})",
                          "name the one to convert with --output NAME (the class scores)")
    return wanted or names[0]


def with_main_output(model, name: str):
    """The model with only its output `name`, called MAIN_OUTPUT (`probabilities`), the name the
    evaluator, model.json, the Coral runner and the Android core read. An identity layer does the
    renaming: no op in the TFLite graph."""
    from tfpipe.backend import keras

    output = model.outputs[list(model.output_names).index(name)]
    if name != MAIN_OUTPUT:
        output = keras.layers.Activation("linear", name=MAIN_OUTPUT)(output)
    return keras.Model(model.inputs, output, name=model.name)


def class_names(given: str | None, outputs: int, data_names: tuple[str, ...] | None, path: Path) -> tuple[str, ...]:
    """The model's class names: from --classes (a file, one name a line, or a,b,c), else the
    calibration config's dataset, else "0".."n-1"; their count must be the model's."""
    if given is not None:
        source = Path(given)
        names = ([line.strip() for line in source.read_text().splitlines() if line.strip()] if source.is_file()
                 else [name.strip() for name in given.split(",")])
        where = f"--classes {given}"
        if any(not name for name in names):
            raise TfpipeError(f"{where}: an empty class name", "give names as a,b,c or a file with one name a line")
    elif data_names is not None:
        names, where = list(data_names), "--calibration-data's dataset"
    else:
        return tuple(str(i) for i in range(outputs))
    if len(names) != outputs:
        raise TfpipeError(f"{where}: {len(names)} classes, but {path}'s output has {outputs}",
                          "give as many class names as the model has outputs, in the model's order (--classes)")
    return tuple(names)


def folder_images(folder: Path, spec: PreprocessSpec, count: int, seed: int,
                  flag: str = "--calibration-data") -> np.ndarray:
    """Up to `count` images of `folder` (searched recursively; a seeded random choice when it holds
    more) through `spec`; `flag` names the option in errors."""
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise TfpipeError(f"{flag}: {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})",
                          "give a folder of representative images, or a tfpipe config")
    rng = np.random.default_rng(seed)
    chosen = [files[i] for i in np.sort(rng.choice(len(files), size=min(count, len(files)), replace=False))]
    inputs = []
    for path in chosen:
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("L" if spec.channels == 1 else "RGB"), np.float32)
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
            raise TfpipeError(f"{flag}: {path}: unreadable image ({e})",
                              "remove or replace the file") from None
        inputs.append(preprocess(pixels.reshape(*pixels.shape[:2], spec.channels), spec).numpy())
    return np.stack(inputs)


def clear_run(run: RunDir) -> None:
    """--force: everything in the run but the writer lock this process holds (an earlier import's
    other modes must never stay beside a new model)."""
    if run.root.exists():
        print(f"--force: replacing {run.root}", flush=True)
        for child in run.root.iterdir():
            if child.name != ".lock":
                shutil.rmtree(child) if child.is_dir() else child.unlink()


@dataclasses.dataclass(frozen=True)
class Import:
    """A checked import, not yet written: what `write` puts into the run directory."""

    source: Path
    model: object  # the loaded Keras model
    output: str  # the output converted, renamed MAIN_OUTPUT in the run
    cfg: Config
    run: RunDir
    class_names: tuple[str, ...]
    images: np.ndarray | None  # preprocessed calibration images of a folder, else None (the config's dataset)

    def write(self, force: bool) -> None:
        """The run's config and float model. `force` first removes everything else in the run (an
        earlier import's other modes must never stay beside this model's)."""
        if force:
            clear_run(self.run)
        self.run.write_config(self.cfg)
        io.write_with(self.run.float_model, lambda tmp: with_main_output(self.model, self.output).save(tmp))
        h, w, c = (*self.cfg.model.input_size, self.cfg.model.channels)
        io.write_json(self.run.train / "imported.json", {"source": str(self.source.resolve()), "input": [h, w, c],
                                                         "output": self.output, "classes": list(self.class_names)})
        renamed = f" as {MAIN_OUTPUT!r}" if self.output != MAIN_OUTPUT else ""
        print(f"Imported {self.source} ({self.model.count_params():,} parameters, input {h}x{w}x{c}, output "
              f"{self.output!r}{renamed}) as {self.run.float_model}", flush=True)


def prepare_import(model_path: Path, calibration: Path, workdir: Path, overrides: list[str],
                   given_size: tuple[int, int] | None, default_config: Path, *, output: str | None = None,
                   classes: str | None = None, name: str | None = None, force: bool = False) -> Import:
    """Load and check the model, its calibration data and class names, and the run WORKDIR/<name or
    file stem>; nothing is written. An existing run is refused unless `force`."""
    model = load_keras_model(model_path)
    out = main_output(list(model.output_names), model_path, output)
    h, w, c = input_size(model, model_path, given_size)
    name = name or (model_path.stem if model_path.is_file() else model_path.name)
    cfg, run = import_run(calibration, classes, overrides, default_config, name, (h, w, c), workdir, force, "--model")
    outputs = int(model.outputs[list(model.output_names).index(out)].shape[-1])
    names, images = calibration_data(cfg, calibration, classes, outputs, model_path)
    return Import(model_path, model, out, cfg, run, names, images)


def _from_config(calibration: Path) -> bool:
    return calibration.suffix.lower() in (".yaml", ".yml")


def import_run(calibration: Path, classes: str | None, overrides: list[str], default_config: Path, name: str,
               size: tuple[int, int, int], workdir: Path, force: bool, flag: str) -> tuple[Config, RunDir]:
    """The config and run directory of an imported model (--model or --tflite): the calibration
    config's, or the default one for a folder of images, with `model.name: external` at `size`
    (H, W, C). An existing run is refused unless `force`; nothing is written."""
    from_config = _from_config(calibration)
    if from_config and not calibration.is_file():
        raise TfpipeError(f"--calibration-data: {calibration} does not exist", "give a tfpipe config or a folder")
    if not from_config and not calibration.is_dir():
        raise TfpipeError(f"--calibration-data: {calibration} is neither a folder of images nor a YAML config",
                          "give a folder of representative images, or a tfpipe config (.yaml)")
    if from_config and classes is not None:
        raise TfpipeError("--classes: the calibration config's dataset names the classes",
                          "leave --classes out, or calibrate on a folder of images")
    cfg = load_config(calibration if from_config else default_config, overrides)
    cfg = dataclasses.replace(cfg, name=name, model=ModelConfig(EXTERNAL, size[:2], size[2])).validate()
    run = RunDir.for_config(cfg, workdir)
    if run.root.exists() and any(p.name != ".lock" for p in run.root.iterdir()) and not force:
        raise TfpipeError(f"{flag}: {run.root} already exists", "import under another name with --name NAME, or "
                                                                "replace that whole run with --force")
    return cfg, run


def calibration_data(cfg: Config, calibration: Path, classes: str | None, outputs: int,
                     model_path: Path) -> tuple[tuple[str, ...], np.ndarray | None]:
    """The class names and, for a folder, its preprocessed calibration images (None for a config:
    its dataset calibrates)."""
    data_names = None
    if _from_config(calibration):
        from tfpipe import tasks

        data_names = tasks.of(cfg).load_splits(cfg).class_names
    names = class_names(classes, outputs, data_names, model_path)
    if _from_config(calibration):
        return names, None
    spec = cfg.preprocess_spec()
    h, w = cfg.model.input_size
    print(f"Calibration: images from {calibration}, preprocess {spec.resize} to {h}x{w}x{cfg.model.channels}, "
          f"x * {spec.scale:g} + {spec.offset:g} (change with --set preprocess.*)", flush=True)
    return names, folder_images(calibration, spec, cfg.convert.calibration_samples, cfg.train.seed)
