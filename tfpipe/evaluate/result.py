"""What the evaluator hands the report: parity.json's content and what its galleries draw."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Evaluation:
    report: dict  # what parity.json holds
    images: dict[int, np.ndarray] = field(default_factory=dict)  # the gallery's test images by index
    # segmentation galleries: "truth", "float" and each converted model's name -> index -> class map
    class_maps: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    # detection galleries: "truth", "float" and each converted model's name -> index -> ImageBoxes
    boxes: dict[str, dict] = field(default_factory=dict)
