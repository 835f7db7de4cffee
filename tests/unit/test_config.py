from pathlib import Path

import pytest
import yaml

from tests.conftest import QUICKSTART
from tfpipe.config import Config, dump, load_config, to_dict
from tfpipe.errors import TfpipeError


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_quickstart_loads_and_states_command_and_expected_metric():
    cfg = load_config(QUICKSTART)
    assert cfg.name == "quickstart" and cfg.task == "classification"
    assert cfg.model.channels == 1 and cfg.model.input_size == (32, 32)
    header = QUICKSTART.read_text().split("\n\n")[0]
    assert "make demo" in header and "top-1" in header


def test_unknown_key_suggests_the_closest(tmp_path):
    path = write(tmp_path, "train:\n  epoch: 3\n")
    with pytest.raises(TfpipeError) as e:
        load_config(path)
    assert "unknown key 'train.epoch'" in str(e.value) and "did you mean 'train.epochs'" in str(e.value)
    assert str(path) in str(e.value)


def test_a_removed_setting_loads_from_an_old_run_and_says_why_when_set(tmp_path):
    """A run's config.yaml lists every setting: runs made before augment.multi_scale was removed
    hold `multi_scale: null`, and still load; a value is refused with the reason."""
    old_run = dump(load_config(QUICKSTART)).replace("augment:\n", "augment:\n  multi_scale: null\n", 1)
    assert "multi_scale: null" in old_run
    assert load_config(write(tmp_path, old_run)) == load_config(QUICKSTART)
    path = write(tmp_path, "augment:\n  multi_scale: [96, 128]\n", "set.yaml")
    with pytest.raises(TfpipeError) as e:
        load_config(path)
    assert f"{path}: augment.multi_scale: this setting was removed" in str(e.value)
    assert "one input size" in str(e.value)


def test_unknown_top_level_key_lists_or_suggests(tmp_path):
    with pytest.raises(TfpipeError, match="did you mean 'model'"):
        load_config(write(tmp_path, "modle: {}\n"))


def test_set_overrides_are_typed_by_yaml():
    cfg = load_config(QUICKSTART, ["train.epochs=3", "train.learning_rate=1e-3", "convert.quantize=[int8]",
                                   "augment.horizontal_flip=false", "model.args.width=0.5"])
    assert cfg.train.epochs == 3 and cfg.train.learning_rate == pytest.approx(1e-3)
    assert cfg.convert.quantize == ("int8",) and cfg.augment.horizontal_flip is False
    assert cfg.model.args == {**load_config(QUICKSTART).model.args, "width": 0.5}


def test_set_unknown_key_names_the_flag():
    with pytest.raises(TfpipeError, match=r"--set train.epoch: unknown key 'train.epoch'.*train.epochs"):
        load_config(QUICKSTART, ["train.epoch=3"])
    with pytest.raises(TfpipeError, match="KEY=VALUE"):
        load_config(QUICKSTART, ["train.epochs"])


def test_wrong_types_are_named(tmp_path):
    with pytest.raises(TfpipeError, match="train.epochs: expected a whole number, got 'ten'"):
        load_config(write(tmp_path, "train: {epochs: ten}\n"))
    with pytest.raises(TfpipeError, match="model.input_size: expected 2 values"):
        load_config(write(tmp_path, "model: {input_size: [32, 32, 3]}\n"))
    with pytest.raises(TfpipeError, match="augment.horizontal_flip: expected true or false"):
        load_config(write(tmp_path, "augment: {horizontal_flip: 1}\n"))


@pytest.mark.parametrize("override, message", [
    ("train.warmup_epochs=10", "train.warmup_epochs"),
    ("convert.quantize=[int4]", "convert.quantize: 'int4' is not accepted"),
    ("model.input_size=[16, 16]", "model.input_size"),
    ("model.channels=2", "model.channels"),
    ("data.val_samples=700", "data.val_samples: 700 leaves no training images"),
    ("preprocess.resize=crop", "preprocess.resize"),
    ("evaluate.threads=0", "evaluate.threads"),
    ("name=../x", "name"),
    ("train.clip_norm=0", "train.clip_norm"),
    ("train.clip_norm=-1.0", "train.clip_norm"),
])
def test_validate_checks_values_and_combinations(override, message):
    with pytest.raises(TfpipeError, match=message.replace("[", r"\[")):
        load_config(QUICKSTART, ["data.train_limit=600", "data.val_samples=100", override])


def test_base_is_merged_one_level(tmp_path):
    write(tmp_path, "name: base\ntrain: {epochs: 7, batch_size: 32}\n", "base.yaml")
    cfg = load_config(write(tmp_path, "base: base.yaml\nname: child\ntrain: {epochs: 2}\n"))
    assert (cfg.name, cfg.train.epochs, cfg.train.batch_size) == ("child", 2, 32)
    write(tmp_path, "base: base.yaml\n", "middle.yaml")
    with pytest.raises(TfpipeError, match="only one level"):
        load_config(write(tmp_path, "base: middle.yaml\n", "deep.yaml"))


def test_invalid_yaml_names_the_line(tmp_path):
    with pytest.raises(TfpipeError, match=r"c.yaml:2: invalid YAML: mapping values are not allowed"):
        load_config(write(tmp_path, "name: x\ntrain: epochs: 3\nqat: {}\n"))


def test_missing_file():
    with pytest.raises(TfpipeError, match="config file not found"):
        load_config("nope.yaml")


def test_dump_round_trips(tmp_path):
    cfg = load_config(QUICKSTART, ["train.epochs=3"])
    again = load_config(write(tmp_path, dump(cfg)))
    assert again == cfg
    assert to_dict(Config())["convert"]["quantize"] == ["none", "int8"]
    assert yaml.safe_load(dump(cfg))["model"]["input_size"] == [32, 32]


DETECTOR = Path(__file__).resolve().parents[2] / "configs" / "detection" / "ssdlite_mnv2.yaml"


@pytest.mark.parametrize("override, message", [
    ("detection.match_iou=1.5", "detection.match_iou: 1.5 is not accepted"),
    ("detection.nms_iou=0", "detection.nms_iou: 0.0 is not accepted"),
    ("detection.focal_alpha=1", "detection.focal_alpha: 1.0 is not accepted"),
    ("detection.max_detections=0", "detection.max_detections: 0 is not accepted"),
    ("detection.lambda_coord=0", "detection.lambda_coord: 0.0 is not accepted"),
    ("detection.lambda_noobj=-1", "detection.lambda_noobj: -1.0 is not accepted"),
    ("convert.postprocess=nms", "convert.postprocess: 'nms' is not accepted"),
])
def test_detector_settings_are_checked(override, message):
    with pytest.raises(TfpipeError, match=message.replace("[", r"\[")):
        load_config(DETECTOR, [override])
