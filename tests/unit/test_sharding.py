import pytest

from tfpipe.evaluate.sharding import shard_bounds


@pytest.mark.parametrize("n, workers", [(10, 1), (10, 3), (256, 2), (3, 8), (1, 2), (10_000, 7)])
def test_shards_cover_every_image_once_in_order(n, workers):
    bounds = shard_bounds(n, workers)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a < b for a, b in bounds) and all(b == c for (_, b), (c, _) in zip(bounds, bounds[1:], strict=False))
    assert len(bounds) == min(n, workers)
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_two_shards_of_256():
    assert shard_bounds(256, 2) == [(0, 128), (128, 256)]
