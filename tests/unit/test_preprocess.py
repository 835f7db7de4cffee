import numpy as np
import pytest

from tfpipe.data.preprocess import letterbox_geometry, preprocess
from tfpipe.runtime.contract import PreprocessSpec


def spec(**kw) -> PreprocessSpec:
    base = {"height": 32, "width": 32, "channels": 1, "scale": 1.0, "offset": 0.0}
    return PreprocessSpec(**{**base, **kw})


def test_scale_and_offset_map_pixels_to_minus_one_one():
    s = spec(height=4, width=4, scale=1 / 127.5, offset=-1.0)
    x = np.tile(np.array([0, 127.5, 255, 51], np.float32), 4).reshape(1, 4, 4, 1)
    out = preprocess(x, s).numpy()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, :, 0], [-1, 0, 1, -0.6], atol=1e-6)


@pytest.mark.parametrize("h, w, expected", [
    (28, 28, (32, 32, 0, 0)),
    (20, 40, (16, 32, 8, 0)),
    (40, 10, (32, 8, 0, 12)),
    (32, 32, (32, 32, 0, 0)),
])
def test_letterbox_geometry(h, w, expected):
    assert letterbox_geometry(h, w, 32, 32) == expected


def test_letterbox_pads_with_pad_value_and_centres():
    image = np.full((20, 40, 1), 200, np.float32)
    out = preprocess(image, spec(pad_value=114)).numpy()
    assert out.shape == (32, 32, 1)
    assert np.all(out[:8] == 114) and np.all(out[24:] == 114)
    np.testing.assert_allclose(out[8:24], 200, atol=1e-4)


def test_stretch_ignores_aspect_ratio():
    image = np.full((20, 40, 1), 200, np.float32)
    out = preprocess(image, spec(resize="stretch")).numpy()
    np.testing.assert_allclose(out, 200, atol=1e-4)


def test_channel_conversions():
    gray = np.arange(32 * 32, dtype=np.float32).reshape(32, 32, 1) % 256
    rgb = preprocess(gray, spec(channels=3)).numpy()
    assert rgb.shape == (32, 32, 3) and np.all(rgb == gray)
    colour = np.zeros((32, 32, 3), np.float32)
    colour[..., 0], colour[..., 1], colour[..., 2] = 10, 20, 30
    np.testing.assert_allclose(preprocess(colour, spec(channels=1)).numpy(), 0.299 * 10 + 0.587 * 20 + 0.114 * 30,
                               rtol=1e-6)
    bgr = preprocess(colour, spec(channels=3, channel_order="bgr")).numpy()
    assert bgr[0, 0].tolist() == [30, 20, 10]


def test_batched_equals_unbatched():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 28, 28, 1)).astype(np.uint8)
    s = spec(scale=1 / 127.5, offset=-1.0)
    batched = preprocess(images, s).numpy()
    for i in range(3):
        np.testing.assert_array_equal(batched[i], preprocess(images[i], s).numpy())


def test_json_round_trip():
    s = spec(channels=3, channel_order="bgr", pad_value=114.0)
    assert PreprocessSpec.from_json(s.to_json()) == s
