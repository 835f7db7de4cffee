"""Length-prefixed pickle messages between the evaluator and a runtime worker over pipes.

Pickle is safe here: both ends are tfpipe processes started by the same user. Arrays travel as
(dtype string, shape, bytes), not as pickled ndarrays: a worker may run another numpy (the
tflite_runtime venv needs numpy<2), and numpy 1.x cannot unpickle numpy 2's arrays.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any, BinaryIO

import numpy as np

_HEADER = struct.Struct(">Q")
# The index of the sample being invoked, written by the worker into a small file before each
# invoke so that the client can name the image that killed the process (about 1 µs per image).
PROGRESS = struct.Struct("<q")
_ARRAY = "__tfpipe_ndarray__"


def encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        array = np.ascontiguousarray(obj)
        return (_ARRAY, array.dtype.str, array.shape, array.tobytes())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {key: encode(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(encode(value) for value in obj)
    return obj


def decode(obj: Any) -> Any:
    if isinstance(obj, tuple) and len(obj) == 4 and obj[0] == _ARRAY:
        return np.frombuffer(obj[3], dtype=np.dtype(obj[1])).reshape(obj[2]).copy()
    if isinstance(obj, dict):
        return {key: decode(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(decode(value) for value in obj)
    return obj


def send(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(encode(message), protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv(stream: BinaryIO) -> Any | None:
    """The next message, or None when the other end has closed the pipe (or died)."""
    header = _read_exact(stream, _HEADER.size)
    if header is None:
        return None
    data = _read_exact(stream, _HEADER.unpack(header)[0])
    return None if data is None else decode(pickle.loads(data))
