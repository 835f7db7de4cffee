"""Fashion-MNIST (Xiao et al. 2017): 60,000 training and 10,000 test 28x28 grayscale garments.

The four idx files are looked for, in order, in: the config's `data.path`, `$TFPIPE_DATA` (the folder
itself or its `fashion-mnist/` subfolder), Debian's `dataset-fashion-mnist` package, and the Keras
cache; then Keras' own download fills the cache. The first folder holding all four files wins.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from tfpipe.errors import TfpipeError

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_IDX_DTYPES = {0x08: np.uint8}


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "fashion-mnist"


def candidate_dirs(config_path: str | None) -> list[tuple[str, Path]]:
    """(where it came from, folder) in search order."""
    out: list[tuple[str, Path]] = []
    if config_path:
        out.append(("data.path", Path(config_path)))
    env = os.environ.get("TFPIPE_DATA")
    if env:
        out += [("$TFPIPE_DATA", Path(env)), ("$TFPIPE_DATA", Path(env) / "fashion-mnist")]
    out += [("Debian dataset-fashion-mnist", DEBIAN_DIR), ("Keras cache", keras_cache_dir())]
    return out


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES.values())


def download(folder: Path) -> None:
    """Fetch the four files into `folder` with Keras' downloader (needs internet)."""
    from tfpipe.backend import keras

    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES.values():
        keras.utils.get_file(fname=str((folder / name).resolve()), origin=DOWNLOAD_ORIGIN + name)


def locate(config_path: str | None, allow_download: bool) -> Path:
    """The first folder that holds all four files, else one error listing every place looked."""
    looked = []
    for source, folder in candidate_dirs(config_path):
        if _complete(folder):
            return folder
        looked.append(f"{folder} ({source})")
    if allow_download:
        folder = keras_cache_dir()
        try:
            download(folder)
        except Exception as e:  # no network, proxy, HTTP error: all mean "not found" to the user
            # Keras wraps the cause as "URL fetch failure on URL: None -- [Errno -3] ..."; keep the cause.
            reason = (str(e).splitlines() or [""])[0].split(" -- ")[-1][:160]
            looked.append(f"{DOWNLOAD_ORIGIN} (download failed: {type(e).__name__}: {reason})")
        else:
            return folder
    raise TfpipeError(
        "Fashion-MNIST not found; looked in: " + "; ".join(looked),
        "install Debian's dataset-fashion-mnist, or set data.path / $TFPIPE_DATA to a folder with "
        + ", ".join(FILES.values()),
    )


def read_idx(path: Path) -> np.ndarray:
    """Parse an idx file (optionally gzipped): magic 0x0000 TT DD, DD big-endian sizes, then data."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise TfpipeError(f"{path}: cannot read ({e})", "the file is corrupt: delete it and fetch it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise TfpipeError(f"{path}: not an idx file of unsigned bytes (bad magic number {raw[:4].hex() or 'empty'})",
                          "expected 00000801 (labels) or 00000803 (images)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise TfpipeError(f"{path}: truncated idx header", "the file is corrupt: fetch it again")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise TfpipeError(f"{path}: header promises {expected} bytes of data for shape {list(shape)}, "
                          f"file has {len(raw) - header}", "the file is truncated or corrupt: fetch it again")
    return np.frombuffer(raw, _IDX_DTYPES[raw[2]], offset=header).reshape(shape)


def _split(folder: Path, kind: str) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = folder / FILES[f"{kind}_images"], folder / FILES[f"{kind}_labels"]
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise TfpipeError(f"{images_path}: images of shape {list(images.shape[1:])}", "Fashion-MNIST images are 28x28")
    if labels.ndim != 1 or len(labels) != len(images):
        raise TfpipeError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path.name}",
                          "the two files must belong together")
    if labels.max(initial=0) >= len(CLASS_NAMES):
        raise TfpipeError(f"{labels_path}: label {int(labels.max())} out of range", "labels are 0..9")
    return images[..., None], labels.astype(np.int32)


def load(config_path: str | None = None, allow_download: bool = True) -> dict:
    """{"train": (images uint8 [N,28,28,1], labels int32 [N]), "test": (...), "class_names": (...), "folder"}."""
    folder = locate(config_path, allow_download)
    return {"train": _split(folder, "train"), "test": _split(folder, "test"),
            "class_names": CLASS_NAMES, "folder": folder}
