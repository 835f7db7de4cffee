import gzip

import numpy as np
import pytest

from tests.conftest import idx_bytes, needs_fashion_mnist, write_fake_fashion_mnist
from tfpipe.data import fashion_mnist
from tfpipe.errors import TfpipeError


@pytest.fixture
def no_system_copies(monkeypatch, tmp_path):
    """Hide Debian's copy and the Keras cache; fail the download as an offline machine does."""
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.delenv("TFPIPE_DATA", raising=False)

    def offline(folder):
        raise OSError("network is unreachable")

    monkeypatch.setattr(fashion_mnist, "download", offline)


def test_reads_generated_idx(fake_fashion):
    data = fashion_mnist.load(str(fake_fashion), allow_download=False)
    images, labels = data["train"]
    assert images.shape == (20, 28, 28, 1) and images.dtype == np.uint8
    assert labels.tolist() == [i % 10 for i in range(20)] and labels.dtype == np.int32
    assert data["test"][0].shape == (10, 28, 28, 1) and len(data["class_names"]) == 10


def test_config_path_wins_over_tfpipe_data(monkeypatch, tmp_path, no_system_copies):
    first = write_fake_fashion_mnist(tmp_path / "first", n_train=20)
    second = write_fake_fashion_mnist(tmp_path / "second", n_train=30)
    monkeypatch.setenv("TFPIPE_DATA", str(second))
    assert fashion_mnist.locate(str(first), allow_download=False) == first
    assert fashion_mnist.locate(None, allow_download=False) == second
    assert fashion_mnist.locate(str(tmp_path / "empty"), allow_download=False) == second


def test_tfpipe_data_subfolder_and_keras_cache(monkeypatch, tmp_path, no_system_copies):
    root = tmp_path / "data"
    write_fake_fashion_mnist(root / "fashion-mnist")
    monkeypatch.setenv("TFPIPE_DATA", str(root))
    assert fashion_mnist.locate(None, False) == root / "fashion-mnist"
    monkeypatch.delenv("TFPIPE_DATA")
    write_fake_fashion_mnist(fashion_mnist.keras_cache_dir())
    assert fashion_mnist.locate(None, False) == fashion_mnist.keras_cache_dir()


def test_missing_everywhere_lists_every_place(tmp_path, no_system_copies, monkeypatch):
    monkeypatch.setenv("TFPIPE_DATA", str(tmp_path / "env"))
    with pytest.raises(TfpipeError) as e:
        fashion_mnist.locate(str(tmp_path / "cfg"), allow_download=True)
    text = str(e.value)
    for place in ("cfg (data.path)", "env ($TFPIPE_DATA)", "no-debian (Debian", "(Keras cache)",
                  "download failed: OSError: network is unreachable"):
        assert place in text
    assert "\n" not in text


def corrupt(folder, name, data: bytes):
    (folder / name).write_bytes(data)
    return folder / name


# mtime=0: gzip stamps the current second into its header, and pytest-xdist needs the same test ids
# in every worker
@pytest.mark.parametrize("payload, message", [
    (b"not gzip at all", "cannot read"),
    (gzip.compress(b"\x00\x00\x0d\x03" + b"\x00" * 20, mtime=0), "bad magic number"),
    (gzip.compress(idx_bytes(np.zeros((20, 28, 28)))[:-5], mtime=0), "header promises"),
    (gzip.compress(b"", mtime=0), "bad magic number empty"),
], ids=["not-gzip", "bad-magic", "truncated", "empty"])
def test_corrupt_files_are_named(fake_fashion, payload, message):
    path = corrupt(fake_fashion, fashion_mnist.FILES["train_images"], payload)
    with pytest.raises(TfpipeError) as e:
        fashion_mnist.load(str(fake_fashion), allow_download=False)
    assert str(path) in str(e.value) and message in str(e.value)


def test_label_count_and_range_are_checked(fake_fashion):
    corrupt(fake_fashion, fashion_mnist.FILES["test_labels"], gzip.compress(idx_bytes(np.zeros(9))))
    with pytest.raises(TfpipeError, match="9 labels for 10 images"):
        fashion_mnist.load(str(fake_fashion), allow_download=False)
    corrupt(fake_fashion, fashion_mnist.FILES["test_labels"], gzip.compress(idx_bytes(np.full(10, 12))))
    with pytest.raises(TfpipeError, match="label 12 out of range"):
        fashion_mnist.load(str(fake_fashion), allow_download=False)


@needs_fashion_mnist
def test_the_real_dataset():
    data = fashion_mnist.load(None, allow_download=False)
    (train_x, train_y), (test_x, test_y) = data["train"], data["test"]
    assert train_x.shape == (60000, 28, 28, 1) and test_x.shape == (10000, 28, 28, 1)
    assert np.bincount(train_y).tolist() == [6000] * 10 and np.bincount(test_y).tolist() == [1000] * 10
