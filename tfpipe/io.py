"""Atomic file writes: every file in a run directory appears complete or not at all."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEMPORARY = ".tmp"  # atomic_path's temporary files are named .<stem>.<random>.tmp<suffix>


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete atomic_path's temporary files under `folder`, left by writers that were killed
    (kill -9 skips the cleanup). Call it only while holding the folder's writer lock."""
    stale = list(Path(folder).rglob(f".*{TEMPORARY}*"))
    for path in stale:
        if path.is_dir():  # a SavedModel being written
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


def _default_file_mode() -> int:
    """What open() would give a new file: 0o666 less the umask (mkstemp's own 0o600 would make
    run outputs unreadable to anyone else, e.g. a web server showing report.html)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary name keeps the suffix, because some writers (Keras) choose the format by it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{TEMPORARY}{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():  # directories (a SavedModel) keep the mode their writer gave them
            os.chmod(tmp_path, _default_file_mode())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def _finite(obj: Any) -> Any:
    """NaN and infinities as null: json.dumps would write the bare words NaN/Infinity, which no
    strict JSON parser (browsers, Kotlin, jq) reads."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(value) for value in obj]
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_with(path: str | Path, writer: Callable[[Path], Any]) -> Path:
    """Let `writer(tmp_path)` produce the file (a Keras save, a matplotlib figure) atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)
