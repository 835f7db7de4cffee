"""Datasets -> the sample contract; the one preprocess; tf.data pipelines."""
