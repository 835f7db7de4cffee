"""Latency of several .tflite files compared fairly on one machine: each in its own runtime worker,
all open at once, timed in rounds that take every file in turn, so a slow stretch of the machine
(another process, a frequency change) hits all of them alike. The figure of a file is the median
over rounds of each round's median. Sequential timing (one file, then the next) moved identical
files 30 % apart here; interleaved, they agree within 3 %."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from tfpipe.runtime.client import Worker


def interleaved_latency(files: list[Path], sample: np.ndarray, rounds: int = 9, runs: int = 40,
                        warmup: int = 10, threads: int = 1) -> dict[Path, float]:
    """Median milliseconds per invoke of each file on `sample` (one preprocessed input [1, ...])."""
    with contextlib.ExitStack() as stack:
        workers = {f: stack.enter_context(Worker(f, threads=threads)) for f in files}
        feeds = {f: {w.image_input(): sample} for f, w in workers.items()}
        for f, w in workers.items():
            w.latency(feeds[f], warmup, 1)
        per_round: dict[Path, list[float]] = {f: [] for f in files}
        for _ in range(rounds):
            for f, w in workers.items():
                per_round[f].append(float(np.median(w.latency(feeds[f], 2, runs))) * 1000)
    return {f: float(np.median(v)) for f, v in per_round.items()}
