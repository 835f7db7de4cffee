"""tfpipe.explain's pieces on tiny models: receptive fields, top-k images, activation maximization."""

import numpy as np
import pytest

import tfpipe  # noqa: F401
from tests.conftest import needs_fashion_mnist
from tfpipe.backend import keras, tf
from tfpipe.explain import features, maximize
from tfpipe.runtime.contract import PreprocessSpec


def _linear_stack():
    """Convolutions and pooling with every weight positive and no activation: a unit's gradient
    support is then exactly its receptive field (clipped to the image)."""
    x = inputs = keras.Input((47, 41, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", name="c1")(x)
    x = keras.layers.Conv2D(2, 3, strides=2, padding="same", name="c2")(x)
    x = keras.layers.ZeroPadding2D(((1, 0), (2, 1)), name="pad")(x)
    x = keras.layers.AveragePooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(2, 3, dilation_rate=2, padding="valid", name="c3")(x)
    b = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.Add(name="add")([x, b])
    model = keras.Model(inputs, x)
    for w in model.weights:
        w.assign(tf.ones_like(w) * (0.1 if len(w.shape) > 1 else 0.0))
    return model


def test_receptive_fields_equal_the_gradient_support_of_every_unit():
    """Exactly equal for every unit whose field lies inside the image; a field that reaches past
    the border (where padding's zeros are seen) holds the support."""
    model = _linear_stack()
    fields = features.receptive_fields(model)
    image = tf.constant(np.random.default_rng(0).uniform(size=(1, 47, 41, 1)).astype(np.float32))
    for name in ("c1", "c2", "pad", "pool", "c3", "add"):
        probe = features.activation_model(model, [name])
        with tf.GradientTape() as tape:
            tape.watch(image)
            out = probe(image)[0, ..., 0]
        jacobian = np.abs(tape.jacobian(out, image).numpy()[..., 0, :, :, 0]) > 0  # [h, w, 47, 41]
        interior = 0
        for (row, col), _ in np.ndenumerate(jacobian[..., 0, 0]):
            field = fields[name]
            box = field.crop(row, col, (47, 41))
            support = np.argwhere(jacobian[row, col])
            if not len(support):  # a unit that sees only ZeroPadding2D's zeros
                continue
            found = (support[:, 0].min(), support[:, 1].min(), support[:, 0].max() + 1, support[:, 1].max() + 1)
            inside = all(field.start[a] + unit * field.jump[a] - field.size[a] / 2 >= 0 and
                         field.start[a] + unit * field.jump[a] + field.size[a] / 2 <= limit
                         for a, unit, limit in ((0, row, 47), (1, col, 41)))
            if inside:
                interior += 1
                assert box == tuple(int(v) for v in found), (name, row, col)
            else:
                assert box[0] <= found[0] and box[1] <= found[1] and box[2] >= found[2] and box[3] >= found[3]
        assert interior >= 1, name


def test_a_layer_without_spatial_axes_sees_the_whole_image():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, name="c")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    fields = features.receptive_fields(keras.Model(inputs, keras.layers.Dense(2, name="d")(x)))
    assert fields["c"].size == (3, 3)
    assert fields["gap"].crop(0, 0, (8, 8)) == (0, 0, 8, 8)


def test_top_k_are_exactly_the_k_largest_activations_over_the_split_ties_to_the_earlier_image():
    rng = np.random.default_rng(1)
    acts = np.round(rng.normal(size=(203, 3, 4, 5)), 1)  # rounded: many ties
    top = features.TopK(7, 5)
    for start, size in ((0, 64), (64, 1), (65, 100), (165, 38)):  # uneven batches
        top.add(acts[start : start + size], start)
    peaks = acts.reshape(203, 12, 5).max(axis=1)
    for c in range(5):
        order = np.argsort(-peaks[:, c], kind="stable")[:7]
        assert top.images[c].tolist() == order.tolist()
        assert np.allclose(top.scores[c], peaks[order, c])
        for i, image in enumerate(top.images[c]):  # the position is the first maximum of that image's map
            where = np.argmax(acts[image, ..., c].reshape(-1))
            assert (top.rows[c, i], top.cols[c, i]) == divmod(where, 4)


def test_top_images_of_a_model_match_a_full_sort_of_its_activations():
    model = _linear_stack()
    images = np.random.default_rng(2).uniform(-1, 1, size=(45, 47, 41, 1)).astype(np.float32)
    found = features.top_images(model, ["c2", "add"], images, k=5, batch_size=16)
    for name in ("c2", "add"):
        acts = features.activation_model(model, [name]).predict(images, verbose=0)
        peaks = acts.reshape(len(images), -1, acts.shape[-1]).max(axis=1)
        for c in range(acts.shape[-1]):
            assert found[name].images[c].tolist() == np.argsort(-peaks[:, c], kind="stable")[:5].tolist()


def test_stage_layers_pick_the_last_activation_at_each_resolution():
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="a_conv")(inputs)
    x = keras.layers.ReLU(name="a_relu")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="a_conv2")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="b_conv")(x)
    x = keras.layers.ReLU(name="b_relu")(x)
    x = keras.layers.BatchNormalization(name="b_bn")(x)
    x = keras.layers.Activation("sigmoid", name="b_head_sigmoid")(x)  # a detector head's, at the same size
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    assert features.stage_layers(model) == ["a_relu", "b_relu"]


def _fashion_mnist(count: int) -> tuple[np.ndarray, np.ndarray]:
    from tfpipe.data import fashion_mnist

    images, labels = fashion_mnist.load(allow_download=False)["train"]
    return images[:count].astype(np.float32), labels[:count]


@pytest.fixture(scope="module")
def small_trained_model():
    """A small ReLU CNN trained for a few epochs on 3,000 real Fashion-MNIST images."""
    x, y = _fashion_mnist(3000)
    x = x / 127.5 - 1
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(16, 3, activation="relu", name="conv1")(inputs)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(16, 3, name="conv2")(h)
    h = keras.layers.ReLU(name="relu2")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(h))
    model.compile(keras.optimizers.Adam(0.003), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  ["accuracy"])
    history = model.fit(x, y, epochs=8, batch_size=64, verbose=0)
    assert history.history["accuracy"][-1] > 0.6
    return model


@needs_fashion_mnist
def test_activation_maximization_raises_each_channel_tenfold_over_the_noise_start(small_trained_model):
    """Measured again from the returned 8-bit images, through the model, as a user would see them.
    A channel that mid-grey already drives hard cannot rise tenfold inside the pixel range, so the
    tenfold rise is required of every channel the noise start leaves below a tenth of its best
    real image (most of them), and of every live channel a level the best of 3,000 training images
    reaches in the median."""
    x, _ = _fashion_mnist(3000)
    spec = PreprocessSpec(28, 28, 1)
    probe = features.activation_model(small_trained_model, ["relu2"])
    best_real = probe.predict(x * spec.scale + spec.offset, verbose=0).mean(axis=(1, 2)).max(axis=0)
    climbing = maximize.climbing_model(small_trained_model, "relu2")
    start = maximize.noise(16, (28, 28), 1)
    made, before, _ = maximize.ascend(climbing, start, spec, np.arange(16), maximize.Ascent(steps=128))
    diagonal = (np.arange(16), np.arange(16))
    start_acts = probe(start * spec.scale + spec.offset).numpy().mean(axis=(1, 2))[diagonal]
    made_acts = probe(made.astype(np.float32) * spec.scale + spec.offset).numpy().mean(axis=(1, 2))[diagonal]
    assert np.allclose(start_acts, before, atol=1e-5)
    live = best_real > 0.01 * best_real.max()  # a channel no real image turns on is dead: nothing to climb
    weak_start = live & (start_acts < best_real / 10)
    assert weak_start.sum() >= 5
    assert np.all(made_acts[weak_start] >= 10 * start_acts[weak_start]), (made_acts, start_acts)
    assert np.all(made_acts[weak_start] > 0)
    assert np.median(made_acts[live] / best_real[live]) >= 1.0
    assert made.dtype == np.uint8


@needs_fashion_mnist
def test_deep_dream_grows_the_layers_energy_in_a_real_image(small_trained_model):
    x, _ = _fashion_mnist(2)
    spec = PreprocessSpec(28, 28, 1)
    model = maximize.climbing_model(small_trained_model, "relu2", dream=True)
    made, before, after = maximize.ascend(model, x, spec, None, maximize.Ascent(steps=32, rate=1.0))
    assert np.all(after > 1.25 * before)
    assert np.mean(np.abs(made.astype(np.float32) - x)) < 40  # still the image, amplified


@needs_fashion_mnist
def test_each_class_logit_climbs(small_trained_model):
    spec = PreprocessSpec(28, 28, 1)
    model = maximize.climbing_model(small_trained_model, "logits")
    made, before, after = maximize.ascend(model, maximize.noise(10, (28, 28), 1), spec, np.arange(10),
                                          maximize.Ascent(steps=48))
    logits = small_trained_model(made.astype(np.float32) * spec.scale + spec.offset).numpy()
    assert np.all(np.diag(logits) > before + 2)  # measured on the 8-bit images


def test_top_k_of_rows_of_outputs_a_detector_head_gives():
    """[B, N, C] activations (a detector's reshaped head): the row of the peak is kept, column 0."""
    acts = np.random.default_rng(3).normal(size=(30, 12, 4))
    top = features.TopK(3, 4)
    top.add(acts[:17], 0)
    top.add(acts[17:], 17)
    peaks = acts.max(axis=1)
    for c in range(4):
        assert top.images[c].tolist() == np.argsort(-peaks[:, c], kind="stable")[:3].tolist()
        assert top.rows[c].tolist() == [int(acts[i, :, c].argmax()) for i in top.images[c]]
        assert top.cols[c].tolist() == [0, 0, 0]


def test_int8_top_k_overlap_counts_ties_at_the_int8_top_code_and_real_reorderings():
    from tfpipe.explain.int8 import _Compare

    reference = np.array([0.9990, 0.9995, 0.9999, 0.5, 0.2, 0.1])[:, None, None, None]  # 6 images, 1 channel
    saturated = np.array([0.996, 0.996, 0.996, 0.5, 0.2, 0.1])[:, None, None, None]  # int8's top code for 3
    compare = _Compare(0.0, 0.996, k=2)
    compare.add(reference, saturated, 0)
    assert compare.overlaps().tolist() == [1.0]  # float's top 2 (images 2, 1) tie with int8's 2nd largest
    reordered = np.array([0.1, 0.2, 0.3, 0.5, 0.9, 0.95])[:, None, None, None]
    compare = _Compare(0.0, 1.0, k=2)
    compare.add(reference[:3], reordered[:3], 0)  # in two batches
    compare.add(reference[3:], reordered[3:], 3)
    assert compare.overlaps().tolist() == [0.0]  # int8's top 2 are images 4 and 5
    row = compare.row("layer")
    assert row["top_k_overlap"] == 0.0 and row["worst_channel"] == 0
    assert sum(row["float_hist"]) == sum(row["int8_hist"]) == 6
