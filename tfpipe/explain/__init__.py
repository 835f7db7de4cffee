"""`python -m tfpipe.explain`: what a run's network learned, drawn into runs/NAME/explain/.

- filters.png: the first convolution's filters;
- top_<layer>.png: for one layer per stage (or --layers), the validation images that excite each of
  the first channels most, the unit's receptive field boxed and cropped (features.py);
- maximize.png: images made by gradient ascent from noise to excite those channels, at every
  chosen depth, and each class's logit when the model ends in a softmax (maximize.py);
- dream.png: deep dream, a validation image amplified by each chosen layer;
- int8.png: the float model against the int8 TFLite file, layer by layer (int8.py);
- explain.json: every figure behind the pictures; index.html: the pictures in one page, which the
  run's report.html links.

--untrained draws the same for the config's model at its initial weights (explain/untrained/), to
see what training changed.
"""

from __future__ import annotations

import html
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfpipe import io, models, plots, tasks
from tfpipe.backend import keras
from tfpipe.config import Config
from tfpipe.errors import TfpipeError
from tfpipe.explain import features, int8, maximize
from tfpipe.report import STYLE, embedded_png
from tfpipe.rundir import RunDir
from tfpipe.train.trainer import load_float_model


@dataclass(frozen=True)
class Options:
    layers: tuple[str, ...] = ()  # empty: one per stage
    channels: int = 8  # the first channels of each layer drawn
    top_k: int = 8
    images: int | None = None  # validation images searched (None: the whole split)
    steps: int = 128  # gradient-ascent steps
    int8_images: int = 500  # validation images the float vs int8 view runs
    untrained: bool = False
    int8_model: Path | None = None  # default: the run's int8 .tflite, when converted


class _Clock:
    """Seconds of each part, into explain.json's `seconds` (benchmarks/explain.py reads them)."""

    def __init__(self, found: dict):
        self.seconds = found.setdefault("seconds", {})
        self.start = time.perf_counter()

    def lap(self, part: str) -> None:
        now = time.perf_counter()
        self.seconds[part] = round(now - self.start, 2)
        self.start = now


def _progress(total: int, label: str, unit: str = "image"):
    """A Keras progress bar (one line at the end when the output is not a terminal)."""
    print(label, flush=True)
    return keras.utils.Progbar(total, width=30, verbose=1 if sys.stdout.isatty() else 2, unit_name=unit)


def _pixels(inputs: np.ndarray, spec) -> np.ndarray:
    """Model inputs back to the uint8 pixels they came from (the letterboxed image the model saw)."""
    pixels = (inputs - spec.offset) / spec.scale
    if spec.channel_order == "bgr" and pixels.shape[-1] == 3:
        pixels = pixels[..., ::-1]
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def _logit_layer(model) -> str | None:
    """The layer before the model's final softmax, whose outputs are the class logits."""
    last = model.get_layer(model.output_names[0]) if model.output_names[0] in [la.name for la in model.layers] \
        else model.layers[-1]
    is_softmax = isinstance(last, keras.layers.Softmax) or (
        isinstance(last, keras.layers.Activation) and getattr(last.activation, "__name__", "") == "softmax")
    if not is_softmax:
        return None
    inbound = features.inbound(last)
    return inbound[0].name if len(inbound) == 1 else None


def _validation(cfg: Config, splits, limit: int | None) -> tuple[np.ndarray, str, int]:
    """The first `limit` validation images (the test split when the source holds no validation split), preprocessed."""
    split, name = (splits.val, "validation") if splits.val is not None and len(splits.val) else (splits.test, "test")
    count = len(split) if limit is None else min(limit, len(split))
    inputs, _ = split.subset(np.arange(count)).arrays(cfg.preprocess_spec(), splits.targets, split.eval_batch)
    return inputs, f"{name} split of {splits.name}", len(split)


def _model(cfg: Config, run: RunDir, untrained: bool, num_classes: int):
    if untrained:  # the weights training starts from (same seed)
        keras.utils.set_random_seed(cfg.train.seed)
        return tasks.of(cfg).trained_model(models.build(cfg.model, cfg.task, num_classes))
    return load_float_model(run)


def check_layers(model, names: tuple[str, ...]) -> list[str]:
    known = [layer.name for layer in model.layers if features.spatial_size(layer.output_shape)]
    for name in names:
        if name not in known:
            raise TfpipeError(f"--layers: {name!r} is not a layer with a feature map in this model",
                              f"choose among: {', '.join(known[:40])}{' ...' if len(known) > 40 else ''}")
    return list(names)


def explain(cfg: Config, run: RunDir, options: Options = Options()) -> dict:
    """Draw everything into run.root/explain (explain/untrained with options.untrained); returns explain.json."""
    out = run.root / "explain" / ("untrained" if options.untrained else "")
    splits = tasks.of(cfg).load_splits(cfg)
    model = _model(cfg, run, options.untrained, len(splits.class_names))
    layers = check_layers(model, options.layers) if options.layers else features.stage_layers(model)
    spec = cfg.preprocess_spec()
    state = "untrained (initial weights)" if options.untrained else "trained"
    found: dict = {"run": str(run.root), "model": cfg.model.name, "weights": state, "layers": layers}
    figures: list[tuple[str, str, Path]] = []

    clock = _Clock(found)
    conv = features.first_convolution(model)
    if conv is not None:
        kernel = np.asarray(conv.depthwise_kernel if isinstance(conv, keras.layers.DepthwiseConv2D) else conv.kernel)
        if isinstance(conv, keras.layers.DepthwiseConv2D):
            kernel = kernel.reshape(*kernel.shape[:2], 1, -1)
        kh, kw, cin, cout = kernel.shape
        figures.append(("First convolution's filters", f"{conv.name}: {cout} filters of {kh}x{kw}x{cin}",
                        plots.filters(kernel, f"{cfg.model.name} ({state}): {conv.name} filters", out / "filters.png")))

    clock.lap("filters")
    inputs, split_name, split_size = _validation(cfg, splits, options.images)
    found["images"] = {"split": split_name, "searched": len(inputs), "split_size": split_size}
    tops = features.top_images(model, layers, inputs, options.top_k,
                               progress=_progress(len(inputs), f"Top-{options.top_k} images of {len(layers)} "
                                                  f"layers over {len(inputs):,} images of the {split_name}"))
    fields = features.receptive_fields(model)
    pixels_of = {}
    found["top_images"] = {}
    for layer in layers:
        top, field = tops[layer], fields[layer]
        shown = min(options.channels, top.scores.shape[0])
        rows = []
        for c in range(shown):
            row = []
            for i in range(top.images.shape[1]):
                index = int(top.images[c, i])
                if index not in pixels_of:
                    pixels_of[index] = _pixels(inputs[index], spec)
                box = field.crop(int(top.rows[c, i]), int(top.cols[c, i]), inputs.shape[1:3])
                row.append({"image": pixels_of[index], "box": box, "score": float(top.scores[c, i]),
                            "index": index, "channel": c})
            rows.append(row)
        found["top_images"][layer] = {
            "receptive_field": list(field.size), "channels": top.scores.shape[0],
            "images": top.images[:shown].tolist(), "scores": top.scores[:shown].tolist()}
        figures.append((f"Top images: {layer}",
                        f"The {options.top_k} of {len(inputs):,} {split_name} images that excite each of the first "
                        f"{shown} of {top.scores.shape[0]} channels most (maximum over positions), the receptive "
                        f"field ({field.size[0]:g}x{field.size[1]:g} px) of the peak unit boxed, and its crop.",
                        plots.top_images(layer, rows, out / f"top_{layer}.png",
                                         f"{cfg.model.name} ({state}) {layer}: top-{options.top_k} "
                                         f"{split_name} images per channel, receptive field boxed")))

    clock.lap("top images")
    figures += _maximize(model, layers, spec, options, inputs, out, found, f"{cfg.model.name} ({state})",
                         list(splits.class_names))

    clock.lap("maximization and dream")
    tflite = options.int8_model or run.tflite("int8")
    if not options.untrained and tflite.is_file():  # an untrained model has no int8 file of its own
        figures.append(_int8_view(model, tflite, inputs[: options.int8_images], options, out, found, cfg,
                                  layers, split_name))
    elif not options.untrained:
        print(f"No int8 model at {tflite}: the float vs int8 view needs `python -m tfpipe.convert` first", flush=True)
    clock.lap("float vs int8")
    io.write_json(out / "explain.json", found)
    write_page(figures, found, out / "index.html")
    print(f"Wrote {len(figures)} pictures and {out / 'index.html'}", flush=True)
    return found


def _maximize(model, layers, spec, options: Options, inputs, out: Path, found: dict, who: str,
              class_names: list[str]) -> list:
    ascent = maximize.Ascent(steps=options.steps)
    hw, channels = tuple(model.input_shape[1:3]), model.input_shape[3]
    logits = _logit_layer(model)
    targets = [(layer, min(options.channels, model.get_layer(layer).output_shape[-1])) for layer in layers]
    if logits:
        targets.append((logits, model.get_layer(logits).output_shape[-1]))
    bar = _progress(ascent.steps * (len(targets) + len(layers)),
                    f"Activation maximization and deep dream at {len(layers)} depths, {ascent.steps} steps each",
                    "step")
    images, titles, labels, found["maximization"] = [], [], [], {}
    for layer, count in targets:
        made, before, after = maximize.ascend(maximize.climbing_model(model, layer),
                                              maximize.noise(count, hw, channels, ascent.seed), spec,
                                              np.arange(count), ascent, bar)
        images.append(list(made))
        names = [f"ch {c}" for c in range(count)] if layer != logits else class_names
        titles.append([f"{n}: {b:.2g}->{a:.2g}" for n, b, a in zip(names, before, after, strict=True)])
        labels.append(f"{layer}{' (logits)' if layer == logits else ''}")
        found["maximization"][layer] = {"start": before.tolist(), "end": after.tolist()}
    figures = [("Activation maximization",
                f"Images optimized from noise by {ascent.steps} steps of gradient ascent (jitter, blur every "
                f"{ascent.blur_every} steps, clipping) on each channel's mean activation, shallow to deep; "
                "the caption gives the activation at the start and the end.",
                plots.image_grid(images, titles, labels, out / "maximize.png",
                                 f"{who}: activation maximization"))]
    start = inputs[:1]
    dreams, captions = [_pixels(start[0], spec)], ["validation #0"]
    found["dream"] = {}
    for layer in layers:
        made, before, after = maximize.ascend(maximize.climbing_model(model, layer, dream=True),
                                              _pixels(start, spec).astype(np.float32), spec, None,
                                              maximize.Ascent(steps=ascent.steps, rate=1.0), bar)
        dreams.append(made[0])
        captions.append(f"{layer}: x{after[0] / max(before[0], 1e-12):.1f}")
        found["dream"][layer] = {"start": float(before[0]), "end": float(after[0])}
    figures.append(("Deep dream", "A validation image changed by gradient ascent on the mean squared activation of "
                    "each layer: what the layer sees in it, amplified (caption: how much the layer's energy grew).",
                    plots.image_grid([dreams], [captions], ["dream"], out / "dream.png",
                                     f"{who}: deep dream")))
    return figures


def _int8_view(model, tflite: Path, inputs, options: Options, out: Path, found: dict, cfg, layers, split_name):
    rows = int8.compare(model, tflite, inputs, options.top_k,
                        progress=_progress(len(inputs), f"Float vs int8 ({tflite.name}) on {len(inputs):,} "
                                           "images, every layer"))
    if not rows:
        raise TfpipeError(f"{tflite}: none of its tensors holds a layer of the float model",
                          "pass the int8 file converted from this run (--int8-model)")
    worst = int8.worst(rows)
    found["int8"] = {"model": str(tflite), "images": len(inputs), "worst": worst["layer"],
                     "layers": [{k: v for k, v in r.items() if k not in ("edges", "float_hist", "int8_hist")}
                                for r in rows]}
    print(f"Float vs int8: {len(rows)} layers compared; the worst top-{options.top_k} overlap is {worst['layer']} "
          f"({worst['top_k_overlap']:.2f}, SQNR {worst['sqnr_db']:.1f} dB)", flush=True)
    shown = [r["layer"] for r in rows if r["layer"] in layers][:7] + [worst["layer"]]
    return ("Float vs int8, layer by layer",
            f"The float Keras model against {tflite.name}'s own intermediate tensors on {len(inputs):,} images of "
            f"the {split_name}: per layer, the overlap of each channel's top-{options.top_k} images and the SQNR; "
            f"below, the activation distributions on the int8 tensor's range. Worst: {worst['layer']}.",
            plots.int8_layers(rows, worst, shown, out / "int8.png",
                              f"{cfg.model.name}: float vs {tflite.name}, {len(inputs):,} images"))


def write_page(figures: list[tuple[str, str, Path]], found: dict, path: Path) -> Path:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>What the network learned</title>"
             f"<style>{STYLE}</style></head><body><h1>What the network learned</h1>",
             f"<p>{html.escape(found['run'])}: {html.escape(found['model'])}, {html.escape(found['weights'])}</p>"]
    for title, text, png in figures:
        parts.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(text)}</p>{embedded_png(title, png)}")
    parts.append("</body></html>")
    return io.write_text(path, "\n".join(parts))
