"""FashionScenes: deterministic, self-consistent across its layouts, and cached."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from tests.conftest import needs_fashion_mnist, run_cli
from tfpipe.config import SceneSpec
from tfpipe.data import fashion_scenes
from tfpipe.errors import TfpipeError

pytestmark = needs_fashion_mnist
SMALL = SceneSpec(size=64, train=12, val=6, max_scale=2.0, seed=3)


def tree_digest(root):
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes") / "a"
    return fashion_scenes.build(root, SMALL, processes=2)


def test_the_same_seed_gives_the_same_bytes_whatever_the_process_count(built, tmp_path):
    again = fashion_scenes.build(tmp_path / "b", SMALL, processes=1)
    assert tree_digest(again) == tree_digest(built)
    other = fashion_scenes.build(tmp_path / "c", SceneSpec(**{**SMALL.__dict__, "seed": 4}), processes=2)
    assert tree_digest(other) != tree_digest(built)


def test_boxes_masks_and_class_map_agree_in_every_layout(built):
    from tfpipe.data.formats import coco, voc, yolo
    from tfpipe.data.formats.coco import instance_masks

    by_coco = coco.read(built)
    by_yolo = yolo.read(built / "data.yaml")
    by_voc = voc.read(built / "voc")
    assert by_coco.class_names == by_yolo.class_names == by_voc.class_names
    assert {s: len(r) for s, r in by_coco.splits.items()} == {"train": 12, "val": 6}
    for split, records in by_coco.splits.items():
        yolo_records = {r.image: r for r in by_yolo.splits[split]}
        voc_records = {r.image.removeprefix("JPEGImages/"): r for r in by_voc.splits[split]}
        for r in records:
            assert 1 <= len(r.classes) <= SMALL.max_objects
            masks = instance_masks(r)
            class_map = np.asarray(Image.open(built / "masks" / split / r.image.split("/")[-1].replace(".jpg", ".png")))
            expected = np.zeros((SMALL.size, SMALL.size), np.uint8)
            for mask, c, (x1, y1, x2, y2) in zip(masks, r.classes, r.boxes.astype(int), strict=True):
                ys, xs = np.nonzero(mask)
                assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == [x1, y1, x2, y2]  # box = mask extent
                expected[mask] = c + 1
            assert not np.any(masks.sum(axis=0) > 1)  # visible silhouettes do not overlap
            np.testing.assert_array_equal(class_map, expected)
            np.testing.assert_allclose(yolo_records[r.image].boxes, r.boxes, atol=1e-3)
            np.testing.assert_allclose(voc_records[r.image.split("/")[-1]].boxes, r.boxes, atol=0)
            assert yolo_records[r.image].classes.tolist() == r.classes.tolist()


@pytest.mark.parametrize("max_occlusion", [0.0, 0.2, 0.6])
def test_occlusion_never_hides_more_than_the_limit(max_occlusion):
    from tfpipe.data import fashion_mnist

    garments, labels = fashion_mnist.load(None, allow_download=False)["test"]
    garments = garments.reshape(-1, 28, 28)
    photos = fashion_scenes._photos()
    spec = SceneSpec(max_occlusion=max_occlusion, min_objects=5, max_objects=5)
    hidden = []
    for seed in range(40):
        scene = fashion_scenes.compose(np.random.default_rng(seed), spec, garments, labels, photos)
        for mask, full in zip(scene.masks, scene.full_areas, strict=True):
            hidden.append(1 - mask.sum() / full)
    assert max(hidden) <= max_occlusion + 1e-9
    if max_occlusion:
        assert max(hidden) > max_occlusion / 2  # garments do overlap, up to the limit


def test_the_cache_builds_once_and_a_bad_spec_names_its_field(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TFPIPE_CACHE", str(tmp_path / "cache"))
    argv = ["inspect", "--workdir", str(tmp_path / "runs"), "--set", "data.builtin=fashion_scenes", "--count", "4"]
    small = [f"data.scenes.{k}={v}" for k, v in (("size", 64), ("train", 8), ("val", 4), ("max_scale", 2))]
    for item in small:
        argv += ["--set", item]
    assert run_cli("tfpipe.data.__main__", argv) == 0
    out = capsys.readouterr().out
    assert "Generating FashionScenes (8 train + 4 val scenes, 64px)" in out and "val: 4 images" in out
    assert (tmp_path / "runs" / "quickstart" / "data" / "samples_val.png").is_file()
    assert run_cli("tfpipe.data.__main__", argv) == 0
    assert "Generating" not in capsys.readouterr().out  # cached
    assert run_cli("tfpipe.data.__main__", [*argv, "--set", "data.scenes.max_scale=2.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("data.scenes.max_scale: 2.5 is not accepted (garments 28 px x 2.5 would not fit the "
                        "64 px image: use at most 2.29)")
    with pytest.raises(TfpipeError, match="min_objects: 3 is not accepted"):
        SceneSpec(min_objects=3, max_objects=2).check()
