"""tfpipe: classic vision CNNs from a labelled dataset to a verified int8 TFLite model.

Importing this package is cheap: it only sets environment switches that must be in place
before TensorFlow is first imported. TensorFlow itself is imported through `tfpipe.backend`.

Floors, bottom up: a module imports only from its own floor or below, inside functions too
(tests/unit/test_architecture.py reads this list and walks every import):

    errors io
    runtime
    metrics plots
    backend config rundir
    data
    models
    tasks
    train
    qat
    delegates
    convert
    evaluate
    report
    explain track
    run cli check doctor search golden __main__

`runtime` imports no TensorFlow: a device runs the same decoding the evaluator verifies. Every
`__main__` module is a command, on the top floor.
"""

import os

# tensorflow-model-optimization (QAT) supports only Keras 2, so `tf.keras` must resolve to
# tf_keras. TensorFlow reads this switch the first time `tf.keras` is touched.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ start-up chatter hides the lines users need; --debug turns it back on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Set by a training command that runs as one process of a multi-worker cluster (TF_CONFIG):
# tfpipe.backend then makes the strategy before the eager context exists, as it must.
MULTIWORKER_SWITCH = "TFPIPE_MULTIWORKER"

__version__ = "0.1.0"
