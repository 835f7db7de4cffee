"""`python -m tfpipe.data anchors`: YOLO priors by k-means over a config's training boxes.

The boxes are measured as the model sees them: each image is fitted to model.input_size by the
config's resize policy (letterbox keeps the aspect ratio, stretch does not), and a box's width and
height become fractions of the model input, the unit of `model.args.priors`. `--write` puts the
priors into the config file itself, editing only the `priors:` line of `model.args` (comments and
the rest of the file stay as they are), and checks that the file still loads to those priors.
"""

from __future__ import annotations

import inspect as _inspect
import re
from pathlib import Path

import numpy as np

from tfpipe import io
from tfpipe.errors import TfpipeError
from tfpipe.runtime.preprocess import letterbox_geometry


def model_input_sizes(records, input_size: tuple[int, int], resize: str) -> np.ndarray:
    """(width, height) of every box of `records`, as fractions of the model input: float64 [M, 2]."""
    height, width = input_size
    sizes = []
    for r in records:
        if not len(r.boxes):
            continue
        boxes = np.asarray(r.boxes, np.float64)
        wh = boxes[:, 2:4] - boxes[:, 0:2]
        if resize == "letterbox":  # the pipeline's geometry: the image's rounded letterboxed size
            new_h, new_w, _, _ = letterbox_geometry(r.height, r.width, height, width)
            wh = wh * np.array([new_w / r.width, new_h / r.height]) / np.array([width, height])
        else:
            wh = wh / np.array([r.width, r.height])
        sizes.append(wh)
    return np.concatenate(sizes) if sizes else np.zeros((0, 2))


def prior_count(cfg) -> int:
    """How many priors the config's model takes: its configured ones, else its family's default."""
    from tfpipe import models

    entry = models.check(cfg.model, cfg.task)
    if entry is None or "priors" not in entry.options():
        yolo = ", ".join(n for n in models.registry.names("detection") if "priors" in models.registry.get(n).options())
        raise TfpipeError(f"model.name: {cfg.model.name} has no priors (its anchors are laid out by size and ratio)",
                          f"priors are YOLO's: {yolo}")
    if "priors" in cfg.model.args:
        return len(cfg.model.args["priors"])
    return len(_inspect.signature(entry.builder).parameters["priors"].default)


def compute(cfg, count: int | None = None, seed: int = 0) -> tuple[np.ndarray, float, int]:
    """(priors [k, 2] (width, height) smallest first, their mean best IoU, the number of boxes)."""
    from tfpipe.data.inspect import annotated_dataset
    from tfpipe.models.detection.anchors import kmeans_priors, mean_best_iou

    count = prior_count(cfg) if count is None else count
    if count < 1:
        raise TfpipeError(f"--count: {count} is not accepted", "use 1 or more")
    dataset, _ = annotated_dataset(cfg)
    if "train" not in dataset.splits:
        raise TfpipeError(f"{dataset.root}: the dataset has no train split", "priors are fitted to the training boxes")
    wh = model_input_sizes(dataset.splits["train"], tuple(cfg.model.input_size), cfg.preprocess.resize)
    wh = wh[(wh > 0).all(axis=1)]
    if len(wh) < count:
        raise TfpipeError(f"{dataset.root}: the train split has {len(wh)} boxes", f"k-means needs at least {count}")
    priors = kmeans_priors(wh, count, seed=seed)
    return priors, mean_best_iou(wh, priors), len(wh)


def format_priors(priors: np.ndarray) -> str:
    return "[" + ", ".join(f"[{w:.4f}, {h:.4f}]" for w, h in priors) + "]"


def write_priors(path: Path, priors: np.ndarray) -> None:
    """Set model.args.priors in the YAML file `path`, editing lines, not re-dumping the file."""
    lines = path.read_text().splitlines(keepends=True)
    value = format_priors(priors)

    def block(start: int, indent: int) -> int:
        """The end (exclusive) of the block whose header is line `start` at `indent` spaces."""
        end = start + 1
        while end < len(lines) and (not lines[end].strip() or lines[end].lstrip().startswith("#")
                                    or len(lines[end]) - len(lines[end].lstrip()) > indent):
            end += 1
        return end

    model = next((i for i, line in enumerate(lines) if re.match(r"model:\s*(#.*)?$", line)), None)
    if model is None:
        raise TfpipeError(f"{path}: no top-level `model:` block to write the priors into",
                          "add model: with name: and input_size:")
    model_end = block(model, 0)
    args = next((i for i in range(model + 1, model_end) if re.match(r"\s+args:\s*(#.*)?$", lines[i])), None)
    if args is None:
        if any(re.match(r"\s+args:", lines[i]) for i in range(model + 1, model_end)):
            raise TfpipeError(f"{path}: model.args is written inline", "write it as a block to use --write")
        child = next(lines[i] for i in range(model + 1, model_end) if lines[i].strip())
        pad = child[:len(child) - len(child.lstrip())]
        last = max(i for i in range(model + 1, model_end) if lines[i].strip() and not lines[i].lstrip().startswith("#"))
        lines[last + 1:last + 1] = [f"{pad}args:\n", f"{pad}  priors: {value}\n"]
    else:
        args_indent = len(lines[args]) - len(lines[args].lstrip())
        args_end = block(args, args_indent)
        found = next((i for i in range(args + 1, args_end) if re.match(r"\s+priors:", lines[i])), None)
        if found is not None:
            pad = lines[found][:len(lines[found]) - len(lines[found].lstrip())]
            end = block(found, len(pad))  # a priors list written over several lines goes as a whole
            lines[found:end] = [f"{pad}priors: {value}  # python -m tfpipe.data anchors --write\n"]
        else:
            child = next((lines[i] for i in range(args + 1, args_end) if lines[i].strip()), None)
            pad = child[:len(child) - len(child.lstrip())] if child else " " * (args_indent + 2)
            lines.insert(args + 1, f"{pad}priors: {value}  # python -m tfpipe.data anchors --write\n")
    io.write_text(path, "".join(lines))
