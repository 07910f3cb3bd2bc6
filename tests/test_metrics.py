"""Metrics on hand-checked inputs."""

from __future__ import annotations

import numpy as np
import pytest

from fakelens.evaluation.metrics import detection_metrics


def test_known_confusion_and_per_class_figures():
    is_ai = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    score = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.1, 0.1, 0.3])
    m = detection_metrics(is_ai, score, threshold=0.5)
    # predicted ai: rows 0,1,2,4 -> TP=3, FN=1, FP=1, TN=3
    assert m["confusion_matrix"]["counts"] == [[3, 1], [1, 3]]
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["ai"]["precision"] == pytest.approx(0.75) and m["ai"]["recall"] == pytest.approx(0.75)
    assert m["real"]["precision"] == pytest.approx(0.75) and m["real"]["support"] == 4
    assert m["auroc"] == pytest.approx(14 / 16)


def test_perfect_and_inverted_scores():
    is_ai = np.array([0, 0, 1, 1])
    assert detection_metrics(is_ai, np.array([0.1, 0.2, 0.8, 0.9]), 0.5)["auroc"] == 1.0
    inverted = detection_metrics(is_ai, np.array([0.9, 0.8, 0.2, 0.1]), 0.5)
    assert inverted["auroc"] == 0.0 and inverted["accuracy"] == 0.0


def test_threshold_is_inclusive_for_ai():
    m = detection_metrics(np.array([1, 0]), np.array([0.5, 0.4999]), 0.5)
    assert m["accuracy"] == 1.0


def test_single_class_has_no_auroc_and_empty_is_an_error():
    assert detection_metrics(np.array([1, 1]), np.array([0.9, 0.2]), 0.5)["auroc"] is None
    with pytest.raises(ValueError, match="empty"):
        detection_metrics(np.array([]), np.array([]), 0.5)
