"""Object detectors: anchors and priors, box coding and target assignment, the model families."""
