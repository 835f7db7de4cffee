"""The device's NumPy preprocessing (tfpipe.runtime.preprocess) is the training pipeline's
(tfpipe.data.preprocess): same input tensor for every size, channel count, resize policy and order."""

import numpy as np
import pytest

from tfpipe.data.preprocess import preprocess as pipeline_preprocess
from tfpipe.runtime.contract import PreprocessSpec
from tfpipe.runtime.preprocess import preprocess


@pytest.mark.parametrize("image_shape", [(28, 28, 1), (100, 60, 3), (37, 129, 3), (128, 128, 3), (200, 90, 1),
                                         (5, 7, 3)])
@pytest.mark.parametrize("size, channels", [((32, 32), 1), ((64, 48), 3), ((128, 128), 3)])
@pytest.mark.parametrize("resize, order", [("letterbox", "rgb"), ("stretch", "bgr"), ("letterbox", "bgr")])
def test_the_device_preprocessing_equals_the_pipelines(image_shape, size, channels, resize, order):
    rng = np.random.default_rng(sum(image_shape) + sum(size))
    spec = PreprocessSpec(size[0], size[1], channels, resize, 1 / 127.5, -1.0, order, 114.0)
    image = rng.integers(0, 256, image_shape).astype(np.uint8)
    expected = pipeline_preprocess(image, spec).numpy()
    got = preprocess(image, PreprocessSpec.from_json(spec.to_json()))
    assert got.shape == expected.shape == (*size, channels) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=3e-5)  # float32 rounding; one pixel level is 0.0078


def test_a_bad_image_shape_is_named():
    with pytest.raises(ValueError, match=r"an image must be .* or \[h, w, 3\], got shape \[4, 4, 2\]"):
        preprocess(np.zeros((4, 4, 2)), PreprocessSpec(4, 4, 1, scale=1.0, offset=0.0))
