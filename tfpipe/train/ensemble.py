"""Snapshot ensembles (Huang et al., "Snapshot Ensembles: Train 1, get M for free", ICLR 2017):
the K models a cyclic cosine schedule leaves at the ends of its cycles, their class probabilities
averaged, scored on the held-out val split against each snapshot alone (the last one is what a
plain run of the same epochs would be compared with). On a device an ensemble of K costs K times
the single model's size and invoke time; the report says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfpipe import io
from tfpipe.backend import keras
from tfpipe.config import Config
from tfpipe.data.pipeline import Splits


def ensemble_top1(probabilities: list[np.ndarray], labels: np.ndarray) -> dict:
    """top-1 of each model's probabilities and of their mean."""
    labels = np.asarray(labels)
    each = [float(np.mean(p.argmax(-1) == labels)) for p in probabilities]
    mean = np.mean(np.stack(probabilities), axis=0)
    return {"snapshots": each, "ensemble": float(np.mean(mean.argmax(-1) == labels))}


def score_snapshots(cfg: Config, splits: Splits, paths: list[Path], out: Path) -> dict | None:
    """Score the snapshots and their ensemble on the val split, print the comparison and write it
    to `out` (JSON). None without a val split."""
    if splits.val is None or not len(splits.val):
        print("No validation split (data.val_samples: 0): the snapshot ensemble is not scored", flush=True)
        return None
    inputs, targets = splits.held_out_arrays(cfg.preprocess_spec())
    labels = np.asarray(targets)
    labels = labels.argmax(-1) if labels.ndim > 1 else labels
    probabilities = [keras.models.load_model(path, compile=False).predict(inputs, batch_size=256, verbose=0)
                     for path in paths]
    scores = ensemble_top1(probabilities, labels)
    result = {"split": "val", "images": int(len(labels)), "snapshots": [str(p) for p in paths],
              "top1_each": scores["snapshots"], "top1_last": scores["snapshots"][-1],
              "top1_ensemble": scores["ensemble"], "device_cost": f"{len(paths)}x size and invoke time"}
    io.write_json(out, result)
    each = ", ".join(f"{t:.4f}" for t in scores["snapshots"])
    gain = 100 * (scores["ensemble"] - scores["snapshots"][-1])
    print(f"Snapshot ensemble on the {len(labels):,} val images: top-1 {scores['ensemble']:.4f} from {len(paths)} "
          f"snapshots ({each}); the last alone {scores['snapshots'][-1]:.4f} ({gain:+.2f} points). On a device "
          f"it costs {len(paths)}x the model's size and invoke time. Wrote {out}", flush=True)
    return result
