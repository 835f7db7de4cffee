"""Shared fixtures: tiny configs on the real Fashion-MNIST, and small generated idx files."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest

import tfpipe  # noqa: F401  (Keras-2 switch before anything imports TensorFlow)

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "quickstart.yaml"

# 2,048 real training images, 2 short epochs (about half the test images right): seconds, not minutes.
TINY = (
    "data.train_limit=2560", "data.val_samples=512", "data.test_limit=256",
    "train.epochs=2", "train.batch_size=32", "train.warmup_epochs=0.2",
    "convert.calibration_samples=32", "evaluate.latency_runs=10", "evaluate.latency_warmup=2",
)


def tiny_args(workdir, *extra: str, name: str = "tiny") -> list[str]:
    """Command-line flags for the tiny quickstart run in `workdir`; a `--set` in `extra` wins over
    TINY's (it came first once, so a test's train.epochs=1 and data.train_limit were overridden)."""
    args = ["--config", str(QUICKSTART), "--workdir", str(workdir)]
    for assignment in (*TINY, f"name={name}"):
        args += ["--set", assignment]
    return [*args, *extra]


def config_args(config: Path, workdir, small: tuple[str, ...], *extra: str) -> list[str]:
    """Command-line flags for `config` in `workdir` with the `--set`s of a small test run."""
    argv = ["--config", str(config), "--workdir", str(workdir)]
    for assignment in (*small, *extra):
        argv += ["--set", assignment]
    return argv


def finished_run(workdir: Path, config: Path, small: tuple[str, ...]):
    """`tfpipe.run` of a small config in `workdir` (its own dataset cache): (cfg, RunDir, parity.json, workdir)."""
    import os

    from tfpipe.config import load_config
    from tfpipe.rundir import RunDir

    os.environ["TFPIPE_CACHE"] = str(workdir / "cache")
    try:
        assert run_cli("tfpipe.run", config_args(config, workdir, small)) == 0
        cfg = load_config(config, list(small))
    finally:
        del os.environ["TFPIPE_CACHE"]
    run = RunDir.for_config(cfg, workdir)
    return cfg, run, json.loads((run.eval / "parity.json").read_text()), workdir


def run_cli(module: str, argv: list[str]) -> int:
    """Run `python -m <module>` in this process; returns its exit status."""
    import importlib

    from tfpipe.cli import main

    with pytest.raises(SystemExit) as e:
        main(importlib.import_module(module).STAGE, argv)
    return e.value.code


def kotlin_core_parity(*goldens: Path, bundles: tuple[Path, ...] = ()) -> str:
    """`make android-core-test GOLDEN=... BUNDLES=...`: the Android core's JVM tests
    (android_demo/core), with golden parity against these files and the bundles' model.json
    parsed; returns what they printed."""
    import os
    import subprocess

    result = subprocess.run(["make", "-s", "--no-print-directory", "android-core-test",
                             f"GOLDEN={os.pathsep.join(str(g) for g in goldens)}",
                             f"BUNDLES={os.pathsep.join(str(b) for b in bundles)}"],
                            cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


def have_fashion_mnist() -> bool:
    from tfpipe.data import fashion_mnist

    try:
        fashion_mnist.locate(None, allow_download=False)
    except Exception:
        return False
    return True


needs_fashion_mnist = pytest.mark.skipif(not have_fashion_mnist(),
                                         reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")


def pytest_sessionstart(session) -> None:
    """Under `make test` (which installs the dataset first) a missing dataset is a failure, not 75 skips."""
    import os

    if os.environ.get("TFPIPE_REQUIRE_DATA") and not have_fashion_mnist():
        pytest.exit("Fashion-MNIST not found although make installed it: run `make fashion-mnist` and read its output",
                    returncode=1)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fake_fashion_mnist(folder: Path, n_train: int = 20, n_test: int = 10, seed: int = 0) -> Path:
    """Valid idx.gz files with random pixels and labels 0..9."""
    from tfpipe.data.fashion_mnist import FILES

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)), "train_labels": np.arange(n_train) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28)), "test_labels": np.arange(n_test) % 10,
    }
    for key, name in FILES.items():
        (folder / name).write_bytes(gzip.compress(idx_bytes(arrays[key])))
    return folder


@pytest.fixture
def fake_fashion(tmp_path: Path) -> Path:
    return write_fake_fashion_mnist(tmp_path / "fake-fashion")


@pytest.fixture
def tiny_config():
    from tfpipe.config import load_config

    def make(*extra: str):
        return load_config(QUICKSTART, [*TINY, *extra])

    return make


# The fixtures that build on the session's tiny run (tests/integration/conftest.py). A file that
# asked only for copy_run was once scheduled apart and trained the run a second time (125 s).
TINY_RUN_FIXTURES = ("tiny_run", "copy_run")


def _reads_the_tiny_run(test_file: str) -> bool:
    path = REPO / test_file
    return path.is_file() and any(name in path.read_text() for name in TINY_RUN_FIXTURES)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, unknown when it is not loaded
def pytest_xdist_make_scheduler(config, log):
    """How `make test` splits the suite over the cores (pytest-xdist): whole files to a worker, so
    module-scoped fixtures are built once, and every file that reads the session's tiny run to the
    same worker, so that run is trained once."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedRunScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            test_file = nodeid.split("::")[0]
            return "tiny_run" if _reads_the_tiny_run(test_file) else test_file

    return SharedRunScheduling(config, log)


def write_image(path: Path, size=(20, 16), mode="RGB") -> Path:
    """A plain grey image file of `size` (width, height); Pillow picks the format by suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.new(mode, size, 128).save(path)
    return path


def write_coco(root: Path, files: list[str], sizes=None, segmentation=None) -> Path:
    """annotations/instances_val.json: one 8x8 box of class `shirt` per image file named."""
    images = [{"id": i, "file_name": f, "width": (sizes or {}).get(f, (20, 16))[0],
               "height": (sizes or {}).get(f, (20, 16))[1]} for i, f in enumerate(files)]
    annotations = [{"id": i, "image_id": i, "category_id": 1, "bbox": [2, 2, 8, 8], "iscrowd": 0,
                    **({"segmentation": segmentation} if segmentation else {})} for i in range(len(files))]
    path = root / "annotations" / "instances_val.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "shirt"}]}))
    return path
