"""Run one .tflite over a dataset split into shards, one runtime worker process per shard.

Workers are processes, so N of them use N cores; the threads here only wait on pipes. A worker
that dies (segfault in a delegate, abort) costs only its shard: the shard is run again once in a
fresh worker, and if it dies again it is reported, with the image it died on, as failed.
"""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tfpipe.runtime import Worker, WorkerCrashed

ATTEMPTS = 2  # a crashed shard is run once more, then reported


@dataclass(frozen=True)
class ShardFailure:
    start: int
    stop: int
    crashes: tuple[WorkerCrashed, ...]  # one per attempt, each with the worker's stderr tail

    def describe(self) -> str:
        last = self.crashes[-1]
        where = f"at image {last.image_index}" if last.image_index is not None else f"during '{last.command}'"
        return (f"the runtime worker died ({_status_name(last.status)}) {where} of images {self.start}-"
                f"{self.stop - 1}, in {len(self.crashes)} of {len(self.crashes)} attempts")


def _status_name(status: int) -> str:
    if status < 0:
        try:
            return signal.Signals(-status).name
        except ValueError:
            pass
    return f"exit status {status}"


@dataclass
class ShardedOutputs:
    outputs: dict[str, np.ndarray] | None  # None when any shard failed
    failures: list[ShardFailure] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)  # crashes whose shard then ran through on its rerun
    info: dict = field(default_factory=dict)  # the worker's description of the model


def shard_bounds(n: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) ranges of near-equal size; no empty shard."""
    edges = np.linspace(0, n, min(workers, n) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def predict_sharded(path: Path, inputs: np.ndarray, *, workers: int = 1, chunk: int = 256, label: str = "",
                    **worker_options) -> ShardedOutputs:
    """Dequantized outputs of `path` for every row of `inputs`, in order."""
    bar = tqdm(total=len(inputs), desc=f"{label:>8}", unit="img", leave=False,
               disable=None)  # None: a bar on a terminal, silence in logs and pipes
    lock = threading.Lock()
    info: dict = {}

    def run_shard(start: int, stop: int) -> tuple[dict[str, list], list[WorkerCrashed]] | ShardFailure:
        crashes = []
        for _ in range(ATTEMPTS):
            done = 0
            try:
                with Worker(path, **worker_options) as worker:
                    with lock:
                        info.setdefault("worker", worker.info)
                    input_name = worker.image_input(inputs.shape[1:])
                    parts: dict[str, list] = {}
                    for first in range(start, stop, chunk):
                        batch = inputs[first : min(first + chunk, stop)]
                        for name, value in worker.predict({input_name: batch}, first_index=first).items():
                            parts.setdefault(name, []).append(value)
                        done += len(batch)
                        bar.update(len(batch))
                    return parts, crashes
            except WorkerCrashed as e:
                crashes.append(e)
                bar.update(-done)
        return ShardFailure(start, stop, tuple(crashes))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda bounds: run_shard(*bounds), shard_bounds(len(inputs), workers)))
    bar.close()
    failures = [r for r in results if isinstance(r, ShardFailure)]
    if failures:
        return ShardedOutputs(None, failures, info=info.get("worker", {}))
    recovered = [f"{crash} (its shard ran through on the rerun)" for _, crashes in results for crash in crashes]
    names = results[0][0].keys()
    outputs = {name: np.concatenate([part for parts, _ in results for part in parts[name]]) for name in names}
    return ShardedOutputs(outputs, recovered=recovered, info=info["worker"])
