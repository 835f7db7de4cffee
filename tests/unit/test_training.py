"""The lectures' training techniques, piece by piece: schedules, the divergence guard, the
update/weight ratio, weight transfer, the search's sampling, and their config checks."""

import math

import numpy as np
import pytest

from tfpipe.backend import keras, tf
from tfpipe.config import Config, TrainConfig
from tfpipe.errors import TfpipeError
from tfpipe.train.callbacks import DivergenceGuard, LayerStatistics, UpdateRatio
from tfpipe.train.schedules import WarmupStepDecay, make_schedule


def test_step_decay_warms_up_then_drops_by_the_factor_at_each_boundary():
    schedule = WarmupStepDecay(0.1, warmup_steps=10, boundaries=[20, 30], factor=0.1)
    rates = {step: float(schedule(step)) for step in (0, 5, 10, 19, 20, 29, 30, 99)}
    assert rates == pytest.approx({0: 0.0, 5: 0.05, 10: 0.1, 19: 0.1, 20: 0.01, 29: 0.01, 30: 0.001, 99: 0.001})
    # a new optimizer after unfreezing starts at step 0: the offset keeps the boundaries absolute
    later = WarmupStepDecay(0.01, 0, [20, 30], 0.1, offset=25)
    assert float(later(0)) == pytest.approx(0.001) and float(later(5)) == pytest.approx(0.0001)
    assert WarmupStepDecay.from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_make_schedule_follows_the_config():
    cfg = TrainConfig(epochs=4, learning_rate=0.2, warmup_epochs=1, schedule="step", decay_epochs=(2, 3))
    schedule = make_schedule(cfg, steps_per_epoch=10)
    assert [float(schedule(s)) for s in (5, 10, 19, 20, 30)] == pytest.approx([0.1, 0.2, 0.2, 0.02, 0.002])
    cosine = make_schedule(TrainConfig(epochs=4, learning_rate=0.2, warmup_epochs=0), steps_per_epoch=10)
    assert float(cosine(0)) == pytest.approx(0.2) and float(cosine(20)) == pytest.approx(0.1)
    assert float(cosine(40)) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("train, message", [
    ({"schedule": "step"}, "train.decay_epochs: [] is not accepted"),
    ({"schedule": "step", "decay_epochs": (3, 2), "epochs": 5}, "train.decay_epochs: [3, 2]"),
    ({"schedule": "step", "decay_epochs": (5,), "epochs": 5}, "train.decay_epochs: [5]"),
    ({"schedule": "exponential"}, "train.schedule: 'exponential'"),
    ({"freeze_epochs": 1}, "train.freeze_epochs: 1 without train.pretrained"),
    ({"freeze_epochs": 3, "epochs": 3, "pretrained": "a.keras"}, "leaves no epoch to fine-tune"),
    ({"pretrained": "weights.pt"}, "train.pretrained: 'weights.pt'"),
    ({"divergence_factor": 1.0}, "train.divergence_factor: 1.0"),
    ({"strategy": "tpu"}, "train.strategy: 'tpu'"),
])
def test_bad_training_settings_are_named(train, message):
    with pytest.raises(TfpipeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Config(train=TrainConfig(**{"epochs": 10, **train})).validate()


class _Model:
    stop_training = False


@pytest.mark.parametrize("losses, stops_at", [
    ([2.3, 2.5, 4.0, 6.8], None),  # below 3 x 2.3 = 6.9
    ([2.3, 2.5, 7.0, 9.0], 3),
    ([2.3, float("nan")], 2),
    ([2.3, float("inf")], 2),
])
def test_divergence_guard_stops_at_three_times_the_first_loss_or_nan(losses, stops_at):
    guard = DivergenceGuard(3.0)
    guard.set_model(_Model())
    guard.on_epoch_begin(0)
    for step, loss in enumerate(losses):
        guard.on_train_batch_end(step, {"loss": loss})
        if guard.model.stop_training:
            break
    if stops_at is None:
        assert guard.tripped is None and not guard.model.stop_training
    else:
        assert guard.model.stop_training and guard.tripped.startswith(f"epoch 1, step {stops_at}:")


def test_update_ratio_is_the_norm_of_the_step_over_the_norm_of_the_weights(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="dense")])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    x, y = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32), np.zeros((16, 4), np.float32)
    kernel = model.get_layer("dense").kernel
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x) - y))
    gradient = tape.gradient(loss, kernel).numpy()
    expected = 0.1 * np.linalg.norm(gradient) / np.linalg.norm(kernel.numpy())  # plain SGD: step = lr x gradient
    callback = UpdateRatio(tmp_path / "update_ratio", every=1, csv_path=tmp_path / "update_ratio.csv")
    history = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, callbacks=[callback], verbose=0)
    assert callback.last["dense/kernel"] == pytest.approx(expected, rel=1e-4)
    assert history.history["update_ratio"] == pytest.approx([expected], rel=1e-4)
    step, name, ratio = (tmp_path / "update_ratio.csv").read_text().splitlines()[1].split(",")
    assert (step, name) == ("1", "dense/kernel") and float(ratio) == pytest.approx(expected, rel=1e-4)
    tags = set()
    for event in tf.compat.v1.train.summary_iterator(str(next((tmp_path / "update_ratio").iterdir()))):
        tags |= {value.tag for value in event.summary.value}
    assert {"update_ratio/dense/kernel", "update_ratio_summary/median", "update_ratio_summary/max"} <= tags


def test_weights_copied_in_order_reproduce_keras_applications_mobilenet_v2():
    """Transfer from keras.applications (random weights here: no network) into the zoo's
    MobileNetV2: the backbone computes exactly what the source computes, also for a grey model
    fed the same image in 3 channels (the stem is summed over colour)."""
    from tfpipe import models
    from tfpipe.config import ModelConfig
    from tfpipe.train.transfer import copy_in_order

    source = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None)
    rng = np.random.default_rng(0)
    for layer in source.layers:  # non-trivial BatchNorm statistics, so a misplaced one shows
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([w + rng.uniform(0.1, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    grey = rng.random((2, 32, 32, 1), np.float32)
    expected = source(np.repeat(grey, 3, axis=-1)).numpy()
    for channels, image in ((3, np.repeat(grey, 3, axis=-1)), (1, grey)):
        model = models.build(ModelConfig("mobilenet_v2_035", (32, 32), channels), "classification", 10)
        loaded = copy_in_order(source, model)
        assert len(loaded) == sum(1 for layer in source.layers if layer.weights)
        features = keras.Model(model.input, model.get_layer("head_relu6").output)(image).numpy()
        np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)


def test_pretrained_file_is_matched_by_layer_name_and_shape(tmp_path):
    from tfpipe import models
    from tfpipe.config import ModelConfig
    from tfpipe.train.transfer import load_pretrained

    source = models.build(ModelConfig("resnet18", (32, 32), 1), "classification", 5)
    source.save(tmp_path / "source.keras")
    target = models.build(ModelConfig("resnet18", (32, 32), 1), "classification", 10)
    loaded = load_pretrained(target, str(tmp_path / "source.keras"))
    assert "logits" not in loaded and "stem_conv" in loaded  # 5 classes vs 10: the classifier starts fresh
    assert len(loaded) == sum(1 for layer in target.layers if layer.weights) - 1
    np.testing.assert_array_equal(target.get_layer("stem_conv").get_weights()[0],
                                  source.get_layer("stem_conv").get_weights()[0])
    other = models.build(ModelConfig("alexnet", (32, 32), 1), "classification", 10)
    with pytest.raises(TfpipeError, match="no layer matches"):
        load_pretrained(other, str(tmp_path / "source.keras"))
    with pytest.raises(TfpipeError, match="missing.keras: not found"):
        load_pretrained(other, str(tmp_path / "missing.keras"))
    (tmp_path / "weights.pt").write_bytes(b"")
    with pytest.raises(TfpipeError, match="weights.pt: not a .keras or .h5 file, nor a run folder"):
        load_pretrained(other, str(tmp_path / "weights.pt"))


def test_pretrained_from_a_run_folder_or_a_weights_file_and_across_channels(tmp_path):
    """runs/NAME takes that run's float model; a weights-only .h5 works too; a grayscale model's
    stem goes into a colour model so that a grey image gets the same response (and back)."""
    from tfpipe import models
    from tfpipe.config import ModelConfig
    from tfpipe.train.transfer import load_pretrained

    grey = models.build(ModelConfig("mobilenet_v2_050", (32, 32), 1), "classification", 10)
    (tmp_path / "run" / "train").mkdir(parents=True)
    grey.save(tmp_path / "run" / "train" / "model.keras")
    colour = models.build(ModelConfig("mobilenet_v2_050", (64, 64), 3), "classification", 10)
    loaded = load_pretrained(colour, str(tmp_path / "run"))
    assert len(loaded) == sum(1 for layer in colour.layers if layer.weights)  # every layer, the stem too
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 1)).astype(np.float32)
    stem = lambda m, image: m.get_layer("stem_conv")(image).numpy()  # noqa: E731
    np.testing.assert_allclose(stem(colour, np.repeat(x, 3, axis=-1)), stem(grey, x), atol=1e-5)
    colour.save_weights(tmp_path / "colour.h5")  # Keras 2's weights file: by layer name
    back = models.build(ModelConfig("mobilenet_v2_050", (32, 32), 1), "classification", 10)
    assert len(load_pretrained(back, str(tmp_path / "colour.h5"))) == len(loaded)
    np.testing.assert_allclose(stem(back, x), stem(grey, x), atol=1e-5)
    back.save_weights(tmp_path / "back.weights.h5")  # Keras 3's: whole, into the same architecture
    again = models.build(ModelConfig("mobilenet_v2_050", (32, 32), 1), "classification", 10)
    assert len(load_pretrained(again, str(tmp_path / "back.weights.h5"))) == len(loaded)
    np.testing.assert_array_equal(again.get_layer("stem_conv").get_weights()[0],
                                  back.get_layer("stem_conv").get_weights()[0])
    with pytest.raises(TfpipeError, match="back.weights.h5: does not fit"):
        load_pretrained(colour, str(tmp_path / "back.weights.h5"))
    with pytest.raises(TfpipeError, match="no trained model in this folder"):
        load_pretrained(back, str(tmp_path))


def test_search_samples_in_log_space_and_narrows_around_the_best():
    from tfpipe.search import WIDEN, fine_box, sample

    box = {"learning_rate": (1e-4, 1e-1)}
    points = sample(np.random.default_rng(0), box, 4000)
    logs = np.log10([p["learning_rate"] for p in points])
    assert logs.min() >= -4 and logs.max() <= -1
    assert np.histogram(logs, bins=3, range=(-4, -1))[0] == pytest.approx([4000 / 3] * 3, rel=0.1)  # per decade
    results = [{"learning_rate": lr, "val_top1": acc} for lr, acc in
               ((1e-4, 0.5), (1e-3, 0.8), (3e-3, 0.9), (2e-2, 0.7), (9e-2, 0.1))]
    narrow = fine_box(results, box, keep=3)["learning_rate"]
    assert narrow == pytest.approx((1e-3 / WIDEN, 2e-2 * WIDEN))
    assert fine_box(results, box, keep=5)["learning_rate"] == pytest.approx((1e-4, 1e-1))  # clipped to the range
    assert all(narrow[0] <= p["learning_rate"] <= narrow[1] for p in sample(np.random.default_rng(1),
                                                                             {"learning_rate": narrow}, 50))
    assert not math.isnan(narrow[0])


@pytest.mark.parametrize("name, args", [("mobilenet_v1_050", {}), ("mobilenet_v2_035", {}), ("vgg16", {}),
                                        ("vgg19", {}), ("resnet50", {"v1": True}), ("resnet101", {"v1": True})])
def test_imagenet_weights_map_onto_our_layers_and_compute_what_keras_applications_computes(name, args):
    """keras.applications' model with random weights (and random BN statistics, so they count) is
    copied onto ours layer for layer; our backbone then gives its outputs within 1e-4. Offline:
    the ImageNet download is the only thing not exercised."""
    from tfpipe import models
    from tfpipe.backend import keras
    from tfpipe.config import ModelConfig
    from tfpipe.train.transfer import applications_model, copy_applications

    ours = models.build(ModelConfig(name, (32, 32), 3, args), "classification", 10)
    theirs = applications_model(ours, weights=None)
    rng = np.random.default_rng(0)
    for layer in theirs.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, variance.shape)])
    loaded = copy_applications(theirs, ours)
    assert len(loaded) == sum(1 for layer in theirs.layers if layer.weights)
    features = [layer for layer in ours.layers if layer.output_shape == theirs.output_shape][-1]
    x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    want = theirs(x, training=False).numpy()
    got = keras.Model(ours.input, features.output)(x, training=False).numpy()
    scale = np.abs(want).max()  # VGG-19's random weights shrink the features to ~4e-4: relative too
    assert scale > 0 and np.abs(got - want).max() <= 1e-4 * min(1.0, scale)


def test_imagenet_offline_is_one_line_naming_the_url_and_the_way_round(monkeypatch):
    from tf_keras.src.utils import data_utils

    from tfpipe import models
    from tfpipe.config import ModelConfig
    from tfpipe.train.transfer import load_pretrained

    def offline(fname, origin, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(data_utils, "get_file", offline)
    model = models.build(ModelConfig("mobilenet_v2_035", (32, 32), 1), "classification", 10)
    with pytest.raises(TfpipeError) as e:
        load_pretrained(model, "imagenet")
    message = str(e.value)
    assert len(message.splitlines()) == 1
    assert ("could not download https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5") in message
    assert "Temporary failure in name resolution" in message and "~/.keras/models/" in message
    with pytest.raises(TfpipeError, match="imagenet weights are not mapped for resnet50"):
        load_pretrained(models.build(ModelConfig("resnet50", (32, 32), 3), "classification", 10), "imagenet")


def test_a_resumed_run_keeps_each_epoch_of_the_history_once(tmp_path):
    from tfpipe.train.callbacks import keep_rows_before

    history = tmp_path / "history.csv"
    history.write_text("epoch,loss,val_loss\n0,2.0,1.9\n1,1.5,1.4\n2,1.2,1.1\n3,1.0")  # epoch 3's row cut short
    keep_rows_before(history, 2)  # the checkpoint of epoch 2 (1-based) is the last: epoch 2 (0-based) reruns
    assert history.read_text().splitlines() == ["epoch,loss,val_loss", "0,2.0,1.9", "1,1.5,1.4"]
    keep_rows_before(history, 5)
    assert history.read_text().splitlines() == ["epoch,loss,val_loss", "0,2.0,1.9", "1,1.5,1.4"]
    keep_rows_before(history, 0)  # a fresh run
    assert not history.exists()
    keep_rows_before(history, 0)  # nothing to do


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("clip_norm", [None, 0.5])
def test_clip_norm_bounds_the_global_norm_of_the_gradient_a_step_uses(name, clip_norm):
    """The gradient each optimizer steps with has a global norm of at most clip_norm, in the
    direction of the raw gradient; None leaves it whole. SGD's step shows it on the weights."""
    from tfpipe.train.trainer import make_optimizer

    rng = np.random.default_rng(0)
    raw = [rng.normal(size=(3, 4)).astype(np.float32) * 10, rng.normal(size=(4,)).astype(np.float32) * 10]
    raw_norm = float(np.sqrt(sum((g ** 2).sum() for g in raw)))
    assert raw_norm > 10
    optimizer = make_optimizer(name, 0.01, clip_norm=clip_norm)
    clipped = optimizer._clip_gradients([tf.constant(g) for g in raw])  # what apply_gradients steps with
    norm = float(np.sqrt(sum(float(tf.reduce_sum(g ** 2)) for g in clipped)))
    if clip_norm is None:
        assert norm == pytest.approx(raw_norm, rel=1e-6)
    else:
        assert norm <= clip_norm * (1 + 1e-6) and norm == pytest.approx(clip_norm, rel=1e-5)
        for g, c in zip(raw, clipped, strict=True):
            np.testing.assert_allclose(c.numpy(), g * clip_norm / raw_norm, rtol=1e-5)
    if name == "sgd":  # and a real step: Nesterov's first step from rest is w -= (1 + 0.9) x lr x g
        weights = [tf.Variable(tf.zeros_like(g)) for g in raw]
        optimizer.apply_gradients(zip([tf.constant(g) for g in raw], weights, strict=True))
        moved = float(np.sqrt(sum(float(tf.reduce_sum(w ** 2)) for w in weights)))
        assert moved == pytest.approx(1.9 * 0.01 * (clip_norm or raw_norm), rel=1e-5)


def test_cyclic_cosine_restarts_at_the_peak_each_cycle_and_ends_each_at_zero():
    from tfpipe.train.schedules import CyclicCosine

    schedule = CyclicCosine(0.1, cycle_steps=100, warmup_steps=10)
    rates = np.array([float(schedule(step)) for step in range(300)])
    np.testing.assert_allclose(rates[:10], 0.1 * np.arange(10) / 10, atol=1e-7)  # linear warm-up
    for start in (100, 200):
        assert rates[start] == pytest.approx(0.1)  # a restart
        assert rates[start - 1] < 1e-4  # the end of the cycle before: where the snapshot is taken
    within = np.arange(10, 100) / 100
    np.testing.assert_allclose(rates[10:100], 0.05 * (1 + np.cos(np.pi * within)), rtol=1e-5, atol=1e-7)
    cfg = TrainConfig(epochs=6, snapshots=3, warmup_epochs=0)
    made = make_schedule(cfg, steps_per_epoch=10)
    assert isinstance(made, CyclicCosine) and made.cycle_steps == 20 and made.warmup_steps == 0


def test_ensemble_top1_averages_the_probabilities():
    from tfpipe.train.ensemble import ensemble_top1

    labels = np.array([0, 1, 2, 1])
    a = np.array([[.6, .4, 0], [.6, .4, 0], [0, .4, .6], [0, 1, 0]])  # right on 0, 2, 3
    b = np.array([[.4, .6, 0], [0, 1, 0], [.5, 0, .5], [0, 1, 0]])    # right on 1, 3 (2 a tie: class 0)
    scores = ensemble_top1([a, b], labels)
    assert scores["snapshots"] == [0.75, 0.5]
    # mean: [.5 .5 0] -> 0 (right), [.3 .7 0] -> 1 (right), [.25 .2 .55] -> 2 (right), [0 1 0] -> right
    assert scores["ensemble"] == 1.0


@pytest.mark.parametrize("overrides, message", [
    (["train.epochs=5", "train.snapshots=2"], "train.snapshots: 2 does not divide train.epochs \\(5\\)"),
    (["train.epochs=4", "train.snapshots=2", "train.schedule=step", "train.decay_epochs=[2]"],
     "needs train.schedule: cosine"),
    (["train.snapshots=0"], "train.snapshots"),
])
def test_snapshot_settings_are_checked(overrides, message):
    from tfpipe.config import load_config

    with pytest.raises(TfpipeError, match=message):
        load_config("configs/quickstart.yaml", overrides)


def test_snapshot_ensembles_are_refused_for_other_tasks():
    from tfpipe import tasks
    from tfpipe.config import load_config

    cfg = load_config("configs/detection/yolov3_tiny.yaml", ["train.epochs=4", "train.snapshots=2"])
    with pytest.raises(TfpipeError, match="snapshot ensembles are scored for classification only, not detection"):
        tasks.of(cfg)


def test_layer_statistics_equal_a_numpy_computation_on_a_tiny_model(tmp_path):
    """Dense -> ReLU -> Dense with a mean squared error: activations and the kernels' gradients by hand."""
    import csv

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(7, name="hidden"), keras.layers.ReLU(name="relu"),
                              keras.layers.Dense(3, name="out")])
    model.compile(keras.optimizers.SGD(0.0), "mse")  # rate 0: the weights the callback sees are the ones below
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 5)).astype(np.float32), rng.normal(size=(32, 3)).astype(np.float32)
    (w1, b1), (w2, b2) = (model.get_layer(n).get_weights() for n in ("hidden", "out"))
    hidden = x @ w1 + b1
    relu = np.maximum(hidden, 0)
    out = relu @ w2 + b2
    d_out = 2 * (out - y) / out.size  # d mean((out - y)^2) / d out
    grad_w2 = relu.T @ d_out
    grad_w1 = x.T @ ((d_out @ w2.T) * (hidden > 0))
    callback = LayerStatistics(tmp_path / "tb", tmp_path / "layer_stats.csv", every=2, probe=(x, y))
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, callbacks=[callback], verbose=0)  # 4 steps: 0 and 2
    with (tmp_path / "layer_stats.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted({int(r["step"]) for r in rows}) == [0, 2]
    got = {(r["layer"], r["kind"]): r for r in rows if r["step"] == "0"}
    expected = {("hidden", "output"): hidden, ("relu", "activation"): relu, ("out", "output"): out,
                ("hidden", "gradient"): grad_w1, ("out", "gradient"): grad_w2}
    assert set(got) == set(expected)
    for key, values in expected.items():
        assert float(got[key]["mean"]) == pytest.approx(values.mean(), rel=1e-4, abs=1e-7), key
        assert float(got[key]["std"]) == pytest.approx(values.std(), rel=1e-4), key
        assert float(got[key]["zero_share"]) == pytest.approx(np.mean(values == 0)), key
    assert 0.2 < float(got["relu", "activation"]["zero_share"]) < 0.8  # a ReLU: about half its outputs are zero
    tags = set()
    for event in tf.compat.v1.train.summary_iterator(str(next((tmp_path / "tb").iterdir()))):
        tags |= {value.tag for value in event.summary.value}
    assert {"layer_stats/activation/relu", "layer_stats/gradient/hidden", "layer_stats/gradient/out"} <= tags


def test_a_resumed_run_logs_the_steps_after_its_checkpoint_once(tmp_path):
    from tfpipe.train.callbacks import keep_rows_before

    stats = tmp_path / "layer_stats.csv"
    stats.write_text("step,layer,kind,mean,std,zero_share\n0,a,output,1,1,0\n200,a,output,1,1,0\n400,a,outp")
    keep_rows_before(stats, 200, "step")
    assert stats.read_text().splitlines() == ["step,layer,kind,mean,std,zero_share", "0,a,output,1,1,0"]
    keep_rows_before(stats, 0, "step")
    assert not stats.exists()


def test_layer_statistics_leave_training_unchanged(tmp_path):
    """Measured in training mode (batch statistics), yet BatchNorm's moving statistics are put back:
    the same seeded fit gives the same weights with or without the measurements."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8, 8, 2)).astype(np.float32), rng.integers(0, 3, 64)

    def fit(callbacks):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 2))
        h = keras.layers.Conv2D(4, 3, name="conv")(inputs)
        h = keras.layers.BatchNormalization(name="bn")(h)
        h = keras.layers.ReLU(name="relu")(h)
        model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(h)))
        model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, callbacks=callbacks, verbose=0)
        return model.get_weights()

    plain = fit([])
    measured = fit([LayerStatistics(tmp_path / "tb", tmp_path / "stats.csv", every=1, probe=(x[:16], y[:16]))])
    assert len(plain) == len(measured)
    for a, b in zip(plain, measured, strict=True):
        assert np.array_equal(a, b)
    assert len(set((tmp_path / "stats.csv").read_text().splitlines()[1:])) > 8 * 4  # every step measured
