"""Model registry: every architecture is built by name from `model:` in the config.

A family module registers its builder and named variants; a variant fixes some builder
arguments (mobilenet_v2_035 fixes width=0.35). `model.args` in the config passes the rest,
checked against the builder's signature so a typo is an error, not a silent default.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tfpipe.config import ModelConfig
from tfpipe.errors import TfpipeError
from tfpipe.runtime.contract import PROBABILITIES

# Every model's softmax output layer is named so (auxiliary outputs have other names): training puts
# the main loss on it, the converter finds the logits at its input, the evaluator scores it.
MAIN_OUTPUT = PROBABILITIES

# Builder arguments the registry fills from the config itself, never from model.args.
_FROM_CONFIG = ("input_shape", "num_classes")


def output_names(model) -> list[str]:
    """The model's output names as built: tfmot renames a QAT copy's to quant_<name>; training
    targets and the device contract use the float names."""
    return [name.removeprefix("quant_") for name in model.output_names]


@dataclass(frozen=True)
class Entry:
    name: str
    task: str
    builder: Callable
    fixed: dict = field(default_factory=dict)
    # a detector's head (models/detection/head.py): anchors, training geometry, losses, targets,
    # layers int8 keeps in float; None for the other tasks' models
    head: Any = None

    def options(self) -> list[str]:
        params = inspect.signature(self.builder).parameters
        return [p for p in params if p not in _FROM_CONFIG and p not in self.fixed]


_REGISTRY: dict[str, Entry] = {}
_LAYERS: dict[str, type] = {}


def register(name: str, task: str, builder: Callable, *, head=None, **fixed) -> None:
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} registered twice")
    _REGISTRY[name] = Entry(name, task, builder, fixed, head)


def custom_layer(cls: type) -> type:
    """Class decorator for a zoo layer of tfpipe's own, declared next to it: Keras must be told the
    class to load a saved model that holds it (`custom_layers`)."""
    if _LAYERS.setdefault(cls.__name__, cls) is not cls:
        raise ValueError(f"layer {cls.__name__!r} registered twice")
    return cls


def custom_layers() -> dict[str, type]:
    """tfpipe's own layer classes by name (every family module imported: `import tfpipe.models`)."""
    return dict(_LAYERS)


def names(task: str | None = None) -> list[str]:
    return sorted(n for n, e in _REGISTRY.items() if task is None or e.task == task)


def get(name: str) -> Entry:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"registered: {', '.join(names())}"
        raise TfpipeError(f"model.name: unknown model {name!r}", hint)
    return _REGISTRY[name]


# model.name of a run whose float model was imported (`tfpipe convert --model PATH`), not built here.
EXTERNAL = "external"


def check(cfg: ModelConfig, task: str) -> Entry | None:
    """Validate model.name and model.args before anything is built or written."""
    if cfg.name == EXTERNAL:
        if cfg.args:
            raise TfpipeError("model.args: an external model takes no options", "remove model.args")
        return None
    entry = get(cfg.name)
    if entry.task != task:
        raise TfpipeError(f"model.name: {cfg.name} is a {entry.task} model, the config's task is {task}",
                          f"{task} models: {', '.join(names(task))}")
    options = entry.options()
    for key in cfg.args:
        if key in entry.fixed:
            raise TfpipeError(f"model.args.{key}: fixed to {entry.fixed[key]} by the variant {cfg.name}",
                              "remove it, or choose another variant")
        if key not in options:
            close = difflib.get_close_matches(key, options, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"{cfg.name} accepts: {', '.join(options)}"
            raise TfpipeError(f"model.args: unknown option {key!r} for {cfg.name}", hint)
    if entry.head is not None:  # a detector's anchor settings are checked before anything is built
        _calling(cfg, entry.head.geometry, input_shape=(*cfg.input_size, cfg.channels), num_classes=0)
    return entry


def _calling(cfg: ModelConfig, function: Callable, **kwargs):
    """`function` with the variant's and the config's arguments; a value a family refuses (its
    ValueError) becomes a one-line error on model.args."""
    entry = get(cfg.name)
    try:
        return function(**kwargs, **entry.fixed, **cfg.args)
    except ValueError as e:
        raise TfpipeError(f"model.args: {cfg.name}: {e}", f"{cfg.name} accepts: {', '.join(entry.options())}") from None


def build(cfg: ModelConfig, task: str, num_classes: int):
    entry = check(cfg, task)
    if entry is None:
        raise TfpipeError("model.name: external: this run's model was imported, it cannot be built or trained here",
                          "import it again with python -m tfpipe.convert --model PATH")
    return _calling(cfg, entry.builder, input_shape=(*cfg.input_size, cfg.channels), num_classes=num_classes)


def head(cfg: ModelConfig):
    """The detector head of model.name (None for a model without one, or an imported model)."""
    return None if cfg.name == EXTERNAL else get(cfg.name).head


def geometry(cfg: ModelConfig, num_classes: int) -> dict:
    """A detector's geometry from its head: `anchors` [N, 4] (cy, cx, h, w), normalised, in the
    order of its outputs, and what else its training needs (YOLO's `cells`, Faster R-CNN's `rpn`)."""
    entry = check(cfg, get(cfg.name).task)
    if entry.head is None:
        raise TfpipeError(f"model.name: {cfg.name} is not a detector", "it has no anchors")
    return _calling(cfg, entry.head.geometry, input_shape=(*cfg.input_size, cfg.channels), num_classes=num_classes)


def anchors(cfg: ModelConfig, num_classes: int):
    """A detector's anchors [N, 4] (cy, cx, h, w), normalised, in the order of its outputs."""
    return geometry(cfg, num_classes)["anchors"]


def float_layers(cfg: ModelConfig) -> tuple[str, ...]:
    """The layers int8 conversion keeps in float; none (integer kernels only) for most models and
    for an imported one."""
    found = head(cfg)
    return () if found is None else found.float_layers
