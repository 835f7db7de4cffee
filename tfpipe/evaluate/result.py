"""What the evaluator hands the report: parity.json's content and what its galleries draw."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Evaluation:
    report: dict  # what parity.json holds
    images: dict[int, np.ndarray] = field(default_factory=dict)  # the gallery's test images by index
    # what galleries draw on those images (the task's scorer's gallery items: a class map, ImageBoxes):
    # "truth", "float" and each converted model's name -> index -> item; empty for a classifier
    drawn: dict[str, dict[int, object]] = field(default_factory=dict)
