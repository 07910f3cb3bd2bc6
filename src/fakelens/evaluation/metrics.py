"""Binary detection metrics, reported for the "ai" class and the "real" class."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

from fakelens.errors import InvalidArgumentError
from fakelens.evaluation.calibration import reliability

CLASS_ORDER = ("real", "ai")  # confusion-matrix rows/columns: index 1 = AI


def auroc(is_ai: np.ndarray, scores: np.ndarray) -> float | None:
    """AUROC, or None when only one class is present."""
    truth = np.asarray(is_ai, dtype=int)
    return float(skm.roc_auc_score(truth, scores)) if len(np.unique(truth)) == 2 else None


def detection_metrics(is_ai: np.ndarray, ai_probability: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, AUROC, average precision, ECE (15 bins),
    confusion matrix.

    `is_ai` holds the truth (1 = AI); the prediction is AI when ai_probability >= threshold.
    The "real" class mirrors the original notebook, whose positive class was REAL.
    """
    truth = np.asarray(is_ai, dtype=int)
    score = np.asarray(ai_probability, dtype=float)
    if truth.size == 0:
        raise InvalidArgumentError("cannot compute metrics on an empty set")
    predicted = (score >= threshold).astype(int)
    both_classes = len(np.unique(truth)) == 2
    result: dict[str, Any] = {
        "count": int(truth.size),
        "threshold": float(threshold),
        "accuracy": float(skm.accuracy_score(truth, predicted)),
        "auroc": auroc(truth, score),
        "ece": reliability(truth, score)["ece"],
        "confusion_matrix": {
            "labels": list(CLASS_ORDER),
            "counts": skm.confusion_matrix(truth, predicted, labels=[0, 1]).tolist(),
        },
    }
    for name, positive, class_score in (("ai", 1, score), ("real", 0, 1.0 - score)):
        precision, recall, f1, support = skm.precision_recall_fscore_support(
            truth, predicted, labels=[positive], zero_division=0
        )
        result[name] = {
            "precision": float(precision[0]),
            "recall": float(recall[0]),
            "f1": float(f1[0]),
            "support": int(support[0]),
            "average_precision": float(skm.average_precision_score(truth == positive, class_score))
            if both_classes
            else None,
        }
    return result


def roc_points(is_ai: np.ndarray, ai_probability: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    fpr, tpr, _ = skm.roc_curve(is_ai, ai_probability)
    return fpr, tpr, float(skm.auc(fpr, tpr))
