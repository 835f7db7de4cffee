import numpy as np

from tfpipe.metrics.classification import classification_metrics, confusion_matrix, output_agreement, top_k_hits


def test_top_k_counts_ties_against_the_label():
    scores = np.array([[0.5, 0.5, 0.0], [0.7, 0.2, 0.1], [0.0, 0.0, 0.0]])
    labels = np.array([0, 0, 2])
    assert top_k_hits(scores, labels, 1).tolist() == [False, True, False]
    assert top_k_hits(scores, labels, 2).tolist() == [True, True, False]
    assert top_k_hits(scores, labels, 3).tolist() == [True, True, True]


def test_top_k_against_brute_force():
    rng = np.random.default_rng(1)
    scores, labels = rng.random((200, 10)), rng.integers(0, 10, 200)
    for k in (1, 5):
        brute = [labels[i] in np.argsort(-scores[i])[:k] for i in range(200)]
        assert top_k_hits(scores, labels, k).tolist() == brute


def test_confusion_and_per_class():
    labels, predictions = np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2])
    assert confusion_matrix(labels, predictions, 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    scores = np.eye(3)[predictions]
    m = classification_metrics(scores, labels)
    assert m["top1"] == 4 / 6 and m["per_class_top1"] == [0.5, 1.0, 2 / 3]


def test_output_agreement():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[1.0, 0.1], [0.0, 2.0]])
    result = output_agreement(a, b)
    assert result["max_abs_error"] == 0.1 and result["min_cosine_similarity"] < 1
    assert output_agreement(a, a)["cosine_similarity"] == 1.0
