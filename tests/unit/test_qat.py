"""QAT's activation ranges start where the float model's tensors are, not at tfmot's [-6, 6]."""

import numpy as np

from tfpipe.backend import keras


def wide_model():
    """ReLU outputs up to about 30 and logits up to about +-20: both outside tfmot's [-6, 6]; then a
    softmax layer, whose quantizer sits before its activation."""
    x = keras.Input((6, 6, 1))
    y = keras.layers.Conv2D(4, 3, activation="relu", name="conv",
                            kernel_initializer=keras.initializers.Constant(1.0))(x)
    y = keras.layers.Flatten(name="flat")(y)
    head = keras.layers.Dense(3, name="head")
    logits = head(y)
    probabilities = keras.layers.Dense(3, activation="softmax", name="probs",
                                       kernel_initializer=keras.initializers.Identity())(logits)
    weights = np.zeros((64, 3), np.float32)
    weights[:, 0], weights[:, 1] = 0.02, -0.02
    head.set_weights([weights, np.zeros(3, np.float32)])
    return keras.Model(x, [logits, probabilities])


def ranges(qat, layer: str) -> dict:
    return {v.name.split("/")[-1].split(":")[0]: float(v.numpy()) for v in qat.get_layer(f"quant_{layer}").weights
            if v.shape == () and v.name.split("/")[-1].startswith(("post_activation", "pre_activation", "output"))}


def test_activation_ranges_start_at_the_float_models_and_stop_the_clipping():
    from tfpipe.qat import apply_qat, calibrate_ranges

    model = wide_model()
    images = np.random.default_rng(0).uniform(0, 3.5, (40, 6, 6, 1)).astype(np.float32)
    qat = apply_qat(model)
    assert ranges(qat, "conv") == {"post_activation_min": -6.0, "post_activation_max": 6.0}
    conv_max = float(keras.Model(model.input, model.get_layer("conv").output)(images).numpy().max())
    float_logits = model(images)[0].numpy()
    assert conv_max > 20 and np.abs(float_logits).max() > 12  # what tfmot's starting range clips
    qat(images, training=True)  # one training step's quantizer updates: the input's and the kernels' ranges
    clipped = float(np.abs(qat(images)[0].numpy() - float_logits).max())

    qat = apply_qat(model)
    assert calibrate_ranges(qat, model, images, batch_size=16) == 3  # conv, head, probs
    conv = ranges(qat, "conv")
    assert conv["post_activation_min"] == 0.0 and abs(conv["post_activation_max"] - conv_max) < 1e-4
    head = ranges(qat, "head")
    np.testing.assert_allclose([head["post_activation_min"], head["post_activation_max"]],
                               [min(float_logits.min(), 0), max(float_logits.max(), 0)], rtol=1e-5)
    probs = ranges(qat, "probs")  # its logits: the head's, through an identity kernel
    np.testing.assert_allclose([probs["pre_activation_min"], probs["pre_activation_max"]],
                               [head["post_activation_min"], head["post_activation_max"]], rtol=1e-5)
    qat(images, training=True)
    calibrated = float(np.abs(qat(images)[0].numpy() - float_logits).max())
    # measured: logits 20.5 off while clipped at 6, 0.10 once calibrated (an int8 step is about 0.2)
    assert clipped > 5 and calibrated < 0.6, (clipped, calibrated)
