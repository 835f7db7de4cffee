"""tfpipe: classic vision CNNs from a labelled dataset to a verified int8 TFLite model.

Importing this package is cheap: it only sets environment switches that must be in place
before TensorFlow is first imported. TensorFlow itself is imported through `tfpipe.backend`.
"""

import os

# tensorflow-model-optimization (QAT) supports only Keras 2, so `tf.keras` must resolve to
# tf_keras. TensorFlow reads this switch the first time `tf.keras` is touched.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ start-up chatter hides the lines users need; --debug turns it back on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
