"""Silent failures of a converted model's outputs, caught before any metric is trusted.

A quantized model can load, run and give outputs of the right shape that carry nothing: NaN from a
float op that overflowed, one value for every image because calibration saw no signal (all-black
images collapse every range), or scores squeezed into a few int8 steps because they share one
tensor, and so one scale, with box coordinates in pixels ("int8 detects nothing"). Each check
names the output and the likely cause. Pure NumPy and the graph reader: it runs next to a device
runtime too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe.runtime.graph import read_graph

FEW_LEVELS = 16  # int8 steps below which a channel's values keep only a handful of levels


def shared_outputs(path: str | Path) -> list[str]:
    """Integer outputs shaped [1, N, 4 + classes] next to no box output of their own: boxes and
    scores in one tensor share one quantization scale, set by the pixel coordinates, so scores in
    0..1 keep only a few steps. Read from the graph alone (convert warns before anything runs)."""
    graph = read_graph(path)
    outputs = [graph.tensors[index] for index in graph.outputs]
    # a detector whose boxes are an output of their own, [1, N, 4], keeps its scores apart already
    box_outputs = {t.shape[1] for t in outputs if len(t.shape) == 3 and t.shape[-1] == 4}
    warnings = []
    for t in outputs:
        if (t.quantized and len(t.shape) == 3 and t.shape[-1] >= 5 and t.shape[1] >= 4
                and t.shape[1] not in box_outputs):
            steps = int(1 / t.scale[0]) if t.scale[0] else 0
            warnings.append(f"output {t.name!r} {list(t.shape)} looks like boxes and scores in one quantized tensor: "
                            f"its scale {t.scale[0]:.4g} leaves a score in 0..1 only {steps} steps; export boxes and "
                            "scores as separate outputs")
    return warnings


def constant_calibration(calibration) -> str | None:
    """A sentence when every calibration value is the same (all-black or blank images): every
    activation range the quantizer derives from them collapses, whatever the model."""
    arrays = calibration.values() if isinstance(calibration, dict) else [calibration]
    for values in arrays:
        values = np.asarray(values)
        if values.size and not np.any(values != values.flat[0]):
            return (f"every calibration input value is {float(values.flat[0]):g} ({len(values)} images, e.g. all "
                    "black): the activation ranges will collapse; calibrate on representative images")
    return None


def collapsed(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray] | None = None,
              scales: dict[str, float] | None = None) -> list[str]:
    """One sentence per collapsed output of a model run on N samples (`outputs`: name -> [N, ...]
    dequantized), compared with the float model's (`reference`, same names) when given. `scales`:
    each quantized output's scale, for the level count."""
    found = []
    for name, values in outputs.items():
        values = np.asarray(values)
        bad = int(np.count_nonzero(~np.isfinite(values))) if values.dtype.kind == "f" else 0
        if bad:
            found.append(f"output {name!r}: {bad:,} of {values.size:,} values are NaN or inf (a float op overflowed, "
                         "or the file is broken)")
            continue
        varies = reference is not None and name in reference and float(np.ptp(reference[name])) > 0
        if len(values) > 1 and not np.any(values != values[:1]):
            what = "all zeros" if not np.any(values) else f"the same for all {len(values):,} samples"
            found.append(f"output {name!r} is {what}" + (" while the float model's varies" if varies else "")
                         + ": its quantization range collapsed (calibration images with no signal, e.g. all black, "
                           "or a constant input)")
            continue
        scale = (scales or {}).get(name)
        if scale and values.ndim >= 2:
            # a channel that carries a signal (the float model's values span 0.1 or more) in fewer than
            # FEW_LEVELS steps of the tensor's scale: a probability's scale (1/256) never does
            source = reference[name] if varies and reference[name].shape == values.shape else values
            spans = np.ptp(source.reshape(-1, values.shape[-1]), axis=0).astype(np.float64)
            squeezed = (spans >= 0.1) & (spans < FEW_LEVELS * scale)
            if squeezed.any():
                channels = np.flatnonzero(squeezed)
                shown = ", ".join(str(c) for c in channels[:8]) + (" ..." if len(channels) > 8 else "")
                found.append(f"output {name!r}: channel(s) {shown} span at most {spans[squeezed].max():.3g}, "
                             f"{spans[squeezed].max() / scale:.1f} steps of its int8 scale {scale:.4g} (the tensor "
                             f"spans {np.ptp(source) / scale:.0f} steps): values of different ranges (box "
                             "coordinates in pixels, scores in 0..1) share one tensor and one scale; export them "
                             "as separate outputs")
    return found
