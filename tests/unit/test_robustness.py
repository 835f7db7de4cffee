"""Issue 18, the unit-sized half: each test names the defect it pins down."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import QUICKSTART, write_coco, write_image
from tfpipe.errors import TfpipeError

# --- config -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("assignment", ["evaluate.max_drop=.nan", "train.learning_rate=.inf",
                                        "preprocess.scale=nan", "detection.nms_iou=-.inf"])
def test_non_finite_numbers_are_refused_in_every_float_field(assignment):
    """`evaluate.max_drop: .nan` turned the parity gate off (no comparison with nan is true)."""
    from tfpipe.config import load_config

    with pytest.raises(TfpipeError, match="is not a finite number") as e:
        load_config(QUICKSTART, [assignment])
    assert e.value.message.startswith(f"--set {assignment}: ")  # the flag is blamed, not the file


def test_a_set_type_error_names_the_flag_not_the_file():
    from tfpipe.config import load_config

    with pytest.raises(TfpipeError) as e:
        load_config(QUICKSTART, ["train.epochs=three"])
    assert e.value.message == "--set train.epochs=three: train.epochs: expected a whole number, got 'three'"


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    from tfpipe.config import load_config

    config = tmp_path / "twice.yaml"
    config.write_text("name: a\ntrain:\n  epochs: 3\n  epochs: 30\n")
    with pytest.raises(TfpipeError, match=r"twice.yaml:4: invalid YAML: key 'epochs' is given twice"):
        load_config(config)


def test_an_empty_config_is_refused(tmp_path):
    """It resolved to `name: quickstart` with every default and wrote into runs/quickstart."""
    from tfpipe.config import load_config

    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(TfpipeError, match="the config is empty"):
        load_config(empty)


def test_json_is_written_strict(tmp_path):
    """parity.json carried the bare word NaN, which strict parsers (browsers, Kotlin, jq) refuse."""
    from tfpipe import io

    def refuse(word):
        raise ValueError(word)

    io.write_json(tmp_path / "a.json", {"nan": float("nan"), "inf": [float("inf"), 1.5], "ok": 2})
    assert json.loads((tmp_path / "a.json").read_text(), parse_constant=refuse) == \
        {"nan": None, "inf": [None, 1.5], "ok": 2}


# --- run directory ----------------------------------------------------------------------------------


def test_a_second_writer_is_refused_and_stale_temporaries_are_removed(tmp_path):
    from tfpipe import io
    from tfpipe.rundir import RunDir

    run = RunDir(tmp_path / "r")
    (run.export).mkdir(parents=True)
    stale = run.export / f".model_int8.abc123{io.TEMPORARY}.tflite"  # what kill -9 during convert leaves
    stale.write_bytes(b"half")
    kept = run.export / "model_int8.tflite"
    kept.write_bytes(b"whole")
    with run.writer():
        assert not stale.exists() and kept.exists()
        with pytest.raises(TfpipeError, match=r"another tfpipe command \(pid \d+\) is writing this run"):
            with run.writer():
                pass
    with run.writer():  # released with the first
        pass


def test_a_trained_run_refuses_another_model(tmp_path):
    """Resuming after a change of model.name ended in 289 warnings and a ValueError."""
    import dataclasses

    from tfpipe.config import ModelConfig, load_config
    from tfpipe.rundir import RunDir

    cfg = load_config(QUICKSTART)
    run = RunDir(tmp_path / "r")
    run.write_config(cfg)
    run.float_model.parent.mkdir(parents=True)
    run.float_model.write_bytes(b"a model")
    run.check_made_by(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=3)))  # same model: fine
    other = dataclasses.replace(cfg, model=ModelConfig("resnet18", (224, 224), 3))
    expected = ("made by task classification, model mobilenet_v2_075 32x32x1; this config asks for task "
                "classification, model resnet18 224x224x3")
    with pytest.raises(TfpipeError, match=expected):
        run.check_made_by(other)


# --- TFLite files -----------------------------------------------------------------------------------


def test_a_sparse_tflite_reads_densified_and_every_check_runs(tmp_path):
    """check crashed in graph._value ('cannot reshape array of size 77 into shape (8,1,1,32)') on a
    model written by TFLite's sparsity tooling (a DENSIFY op over the non-zeros)."""
    from tfpipe import delegates
    from tfpipe.backend import keras, tf
    from tfpipe.runtime.graph import read_graph

    model = keras.Sequential([keras.Input((4, 4, 32)), keras.layers.Conv2D(8, 1, use_bias=False)])
    weights = model.get_weights()[0]
    weights[np.random.default_rng(0).random(weights.shape) < 0.7] = 0
    model.set_weights([weights])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    path = tmp_path / "sparse.tflite"
    path.write_bytes(converter.convert())
    graph = read_graph(path)
    assert "DENSIFY" in [op.kind for op in graph.ops]
    (sparse,) = [t for t in graph.tensors if t.value is not None and t.value.shape == (8, 1, 1, 32)]
    np.testing.assert_array_equal(sparse.value, weights.transpose(3, 0, 1, 2))  # Keras HWIO -> TFLite OHWI
    for target in delegates.TARGETS:
        assert delegates.check(path, target)["ops"]["total"] == len(graph.ops)


def test_gpu_and_nnapi_refuse_int16_activations(tmp_path):
    """An int16x8 model was reported '35/35 ops on the GPU delegate' and fully NNAPI-delegated."""
    from tfpipe import delegates
    from tfpipe.backend import keras
    from tfpipe.convert.tflite import to_tflite

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    calibration = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 3)).astype(np.float32)
    for mode, refused in (("int16x8", True), ("int8", False)):
        path = tmp_path / f"{mode}.tflite"
        path.write_bytes(to_tflite(model, mode, "float", calibration))
        gpu, nnapi = delegates.check(path, "gpu"), delegates.check(path, "nnapi")
        conv = next(r for r in gpu["per_op"] if r["op"] == "CONV_2D")
        assert conv["supported"] is not refused, conv
        assert (nnapi["ops"]["supported"] < nnapi["ops"]["total"]) is refused
        if refused:
            assert "INT16 tensor" in conv["reason"]
            assert any("INT16 tensor" in (r["reason"] or "") for r in nnapi["per_op"])


def test_calibration_is_fed_by_input_name_whatever_the_converted_order(tmp_path):
    """The representative dataset fed a two-input model by position, and the converted graph's
    input order need not be the Keras order: RESHAPE then saw 8 elements where it wanted 6."""
    from tfpipe.backend import keras
    from tfpipe.convert.tflite import to_tflite
    from tfpipe.runtime import Worker

    # names sorting against the Keras order, and shapes that cannot be swapped unnoticed
    boxes, image = keras.Input((6, 4), batch_size=1, name="a_boxes"), keras.Input((5, 5, 2), batch_size=1,
                                                                                   name="z_image")
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 1)(image))
    flat = keras.layers.Flatten()(keras.layers.Dense(3)(boxes))
    model = keras.Model([image, boxes], keras.layers.Dense(2)(keras.layers.Concatenate()([pooled, flat])))
    rng = np.random.default_rng(0)
    calibration = {"z_image": rng.uniform(-1, 1, (16, 5, 5, 2)).astype(np.float32),
                   "a_boxes": rng.uniform(0, 1, (16, 6, 4)).astype(np.float32)}
    path = tmp_path / "two_inputs.tflite"
    path.write_bytes(to_tflite(model, "int8", "float", calibration))
    with Worker(path) as worker:
        assert sorted(worker.inputs) == ["a_boxes", "z_image"]
        got = worker.predict(calibration)
    expected = model.predict([calibration["z_image"], calibration["a_boxes"]], verbose=0)
    (output,) = got.values()
    assert np.abs(output - expected).max() < 0.1 * np.abs(expected).max()
    with pytest.raises(ValueError, match="calibration data for"):
        to_tflite(model, "int8", "float", {"z_image": calibration["z_image"]})


# --- imported models ---------------------------------------------------------------------------------


def _keras(tmp_path, name: str, outputs: int = 7, lam=None):
    from tfpipe.backend import keras

    x = keras.Input((28, 28, 1))
    y = keras.layers.Flatten()(x)
    if lam is not None:
        y = keras.layers.Lambda(lam, name="sneaky")(y)
    model = keras.Model(x, keras.layers.Dense(outputs, activation="softmax", name="dense_2")(y))
    path = tmp_path / name
    model.save(path)
    return path


def test_a_lambda_in_an_h5_is_refused_before_its_code_runs(tmp_path):
    """Loading a legacy .h5 ran the Lambda's marshalled code (the file appeared), then crashed."""
    from tfpipe.convert.external import load_keras_model

    marker = tmp_path / "pwned"

    def lam(x, marker=str(marker)):
        open(marker, "w").close()
        return x

    path = _keras(tmp_path, "lambda.h5", lam=lam)
    marker.unlink()  # saving traced it once
    with pytest.raises(TfpipeError, match=r"lambda.h5: layer 'sneaky' is a Lambda layer, whose Python code would run"):
        load_keras_model(path)
    assert not marker.exists()


def test_the_main_output_is_found_and_renamed_for_the_device_contract(tmp_path):
    from tfpipe.backend import keras
    from tfpipe.convert.external import load_keras_model, main_output, with_main_output

    model = load_keras_model(_keras(tmp_path, "m.keras"))
    assert main_output(list(model.output_names), Path("m.keras"), None) == "dense_2"
    renamed = with_main_output(model, "dense_2")
    assert renamed.output_names == ["probabilities"]
    x = np.random.default_rng(0).uniform(0, 1, (3, 28, 28, 1)).astype(np.float32)
    np.testing.assert_array_equal(renamed.predict(x, verbose=0), model.predict(x, verbose=0))
    two = keras.Model(model.input, [model.output, model.layers[1].output])
    with pytest.raises(TfpipeError, match=r"has 2 outputs \(dense_2, flatten.*\) \(name the one to convert with"):
        main_output(list(two.output_names), Path("two.keras"), None)
    with pytest.raises(TfpipeError, match="--output logits: two.keras has no such output"):
        main_output(list(two.output_names), Path("two.keras"), "logits")


def test_class_names_are_checked_against_the_model(tmp_path):
    from tfpipe.convert.external import class_names

    names_file = tmp_path / "emotions.txt"
    names_file.write_text("angry\nhappy\n\nsad\n")
    assert class_names(str(names_file), 3, None, Path("m.h5")) == ("angry", "happy", "sad")
    assert class_names("a, b", 2, None, Path("m.h5")) == ("a", "b")
    assert class_names(None, 3, None, Path("m.h5")) == ("0", "1", "2")
    with pytest.raises(TfpipeError, match=r"--calibration-data's dataset: 10 classes, but m.h5's output has 7"):
        class_names(None, 7, tuple("abcdefghij"), Path("m.h5"))
    with pytest.raises(TfpipeError, match="--classes a,b: 2 classes"):
        class_names("a,b", 3, None, Path("m.h5"))


# --- dataset formats ---------------------------------------------------------------------------------


def test_yolo_reads_a_single_split_export_and_writes_train(tmp_path):
    from tfpipe.data.formats import yolo

    root = tmp_path / "old"
    write_image(root / "images" / "all" / "a.tif")  # TIFF was refused by the readers
    (root / "labels" / "all").mkdir(parents=True)
    (root / "labels" / "all" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (root / "data.yaml").write_text("path: .\nall: images/all\nnames: {0: shirt}\n")
    dataset = yolo.read(root / "data.yaml")
    assert list(dataset.splits) == ["all"] and len(dataset.splits["all"]) == 1
    yolo.write(dataset, root)  # the images stay where they are
    written = yaml.safe_load((root / "data.yaml").read_text())
    assert written["train"] == "images/all" and "all" not in written
    assert list(yolo.read(root / "data.yaml").splits) == ["train"]


def test_voc_segmentation_only_export_is_read(tmp_path):
    from tfpipe.data.formats import voc

    root = tmp_path / "voc"
    for stem in ("2007_000032", "2007_000033"):
        write_image(root / "JPEGImages" / f"{stem}.jpg")
        write_image(root / "SegmentationClass" / f"{stem}.png", mode="P")
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000032\n2007_000033\n")
    dataset = voc.read(root)
    assert dataset.class_names == voc.VOC_CLASSES
    (record, _) = dataset.splits["val"]
    assert record.mask == "SegmentationClass/2007_000032.png" and (record.width, record.height) == (20, 16)
    assert len(record.boxes) == 0


def test_coco_takes_the_annotations_file_itself(tmp_path):
    from tfpipe.data.formats import coco

    write_image(tmp_path / "a.png")
    dataset = coco.read(write_coco(tmp_path, ["a.png"]))
    assert list(dataset.splits) == ["val"] and dataset.root == tmp_path


def test_data_convert_opens_every_image(tmp_path):
    """VOC and COCO conversion never opened the images: empty, corrupt or wrongly sized files, and
    symlinks out of the dataset, went through with exit 0."""
    import os

    from tfpipe.data.formats.convert import convert

    def dataset(name: str, setup) -> Path:
        root = tmp_path / name
        write_image(root / "good.png")
        setup(root)
        write_coco(root, ["good.png", "bad.png"], sizes={"bad.png": (20, 16)})
        return root

    cases = {
        "empty": (lambda r: (r / "bad.png").write_bytes(b""), "bad.png: unreadable or corrupt image"),
        "corrupt": (lambda r: (r / "bad.png").write_bytes((r / "good.png").read_bytes()[:60]),
                    "bad.png: unreadable or corrupt image"),
        "size": (lambda r: write_image(r / "bad.png", size=(10, 10)), "declares a 20x16 image, but"),
        "link": (lambda r: os.symlink("/etc/hostname", r / "bad.png"), "links to /etc/hostname, outside the dataset"),
        "missing": (lambda r: None, "bad.png: image not found"),
    }
    for name, (setup, message) in cases.items():
        src = dataset(name, setup)
        with pytest.raises(TfpipeError, match=message):
            convert("coco", "yolo", src, tmp_path / f"{name}_out")
        assert not (tmp_path / f"{name}_out").exists()
        skipped = convert("coco", "yolo", src, tmp_path / f"{name}_skip", on_bad_sample="skip")
        assert sum(len(r) for r in skipped.splits.values()) == 1 and len(skipped.skipped) == 1
        assert message.split(":")[-1].strip().split(",")[0] in (tmp_path / f"{name}_skip" /
                                                                  "skipped_samples.txt").read_text()


def test_converting_away_instance_masks_says_so(tmp_path):
    from tfpipe.data.formats.convert import convert, dropped

    write_image(tmp_path / "src" / "a.png")
    write_coco(tmp_path / "src", ["a.png"], segmentation=[[2, 2, 10, 2, 10, 10]])
    out = convert("coco", "yolo", tmp_path / "src", tmp_path / "yolo")
    assert dropped(out, "yolo").startswith("Not carried: 1 instance masks (yolo holds boxes")
    for kind, mask in (("voc", "SegmentationClass/a.png"), ("masks", "masks/val/a.png")):
        out = convert("coco", kind, tmp_path / "src", tmp_path / kind)
        assert dropped(out, kind).startswith("Instances painted into class maps: 1 instance masks")
        ids = np.asarray(Image.open(tmp_path / kind / mask))
        assert ids.shape == (16, 20) and set(np.unique(ids).tolist()) == {0, 1}  # the triangle is class 0 + 1
    assert dropped(convert("coco", "coco", tmp_path / "src", tmp_path / "coco"), "coco") is None


def test_a_long_list_of_bad_mask_ids_is_cut_short(tmp_path):
    from tfpipe.data.formats import folders

    mask = Image.fromarray(np.arange(200, dtype=np.uint8).reshape(10, 20), "L")
    write_image(tmp_path / "images" / "a.png", size=(20, 10))
    (tmp_path / "masks").mkdir()
    mask.save(tmp_path / "masks" / "a.png")
    (tmp_path / "labels.txt").write_text("background\nshirt\n")
    with pytest.raises(TfpipeError) as e:
        folders.read_masks(tmp_path)
    assert "class ids 198 of them, first 10: 2, 3, 4" in str(e.value) and len(str(e.value)) < 300


def bomb_png(path: Path, side: int = 20_000) -> Path:
    """A valid PNG header announcing side x side pixels (PIL refuses it at open, as it would the real one)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))
                     + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_one_line(tmp_path):
    """A 20000x20000 image in --calibration-data raised DecompressionBombError (a traceback)."""
    from tfpipe.convert.external import folder_images
    from tfpipe.data.formats.records import image_size
    from tfpipe.runtime.contract import PreprocessSpec

    bomb_png(tmp_path / "big.png")
    with pytest.raises(TfpipeError, match="big.png: unreadable image .*decompression bomb"):
        folder_images(tmp_path, PreprocessSpec(height=28, width=28, channels=1), 10, 0)
    with pytest.raises(TfpipeError, match="big.png: unreadable or corrupt image"):
        image_size(tmp_path / "big.png")


def test_an_op_the_16x8_quantizer_cannot_take_is_one_line():
    """U-Net's DEPTH_TO_SPACE (and a detector's post-processing op) stopped int16x8 conversion
    with a RuntimeError traceback from TFLite's calibrator."""
    import numpy as np

    from tfpipe.backend import keras
    from tfpipe.convert.tflite import to_tflite
    from tfpipe.models.segmentation.common import DepthToSpace

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 1)(inputs)
    outputs = keras.layers.Softmax(name="probabilities")(keras.layers.Conv2D(4, 1)(DepthToSpace(2)(x)))
    model = keras.Model(inputs, outputs, name="upsampler")
    calibration = np.random.default_rng(0).random((4, 8, 8, 3), np.float32)
    with pytest.raises(TfpipeError) as e:
        to_tflite(model, "int16x8", "float", calibration)
    assert e.value.message == ("--quantize int16x8: TFLite's 16x8-bit quantizer has no kernel for DEPTH_TO_SPACE in "
                               "upsampler")
    assert to_tflite(model, "int8", "float", calibration)[4:8] == b"TFL3"  # int8 has the kernel
