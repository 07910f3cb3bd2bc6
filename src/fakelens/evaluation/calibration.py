"""Calibration: temperature scaling, expected calibration error, operating thresholds."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from fakelens.errors import InvalidArgumentError
from fakelens.models.card import ModelCard, apply_temperature, logit

ECE_BINS = 15


def fit_temperature(ai_probability: np.ndarray, is_ai: np.ndarray) -> float:
    """The temperature T minimising the log loss of sigmoid(logit(p) / T) on held-out data."""
    z = logit(ai_probability)
    y = np.asarray(is_ai, dtype=np.float64)

    def log_loss(log_t: float) -> float:
        scaled = z / np.exp(log_t)
        # log(1 + e^x) computed stably; loss = softplus(s) - y*s
        return float(np.mean(np.logaddexp(0.0, scaled) - y * scaled))

    result = minimize_scalar(log_loss, bounds=(-4.0, 4.0), method="bounded", options={"xatol": 1e-5})
    return float(np.exp(result.x))


def reliability(is_ai: np.ndarray, ai_probability: np.ndarray, bins: int = ECE_BINS) -> dict[str, Any]:
    """Top-label confidence vs. accuracy in equal-width bins, and the ECE they give."""
    p = np.asarray(ai_probability, dtype=np.float64)
    truth = np.asarray(is_ai).astype(bool)
    predicted = p >= 0.5
    confidence = np.where(predicted, p, 1 - p)
    correct = predicted == truth
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    mean_conf = np.bincount(which, weights=confidence, minlength=bins) / np.maximum(counts, 1)
    accuracy = np.bincount(which, weights=correct, minlength=bins) / np.maximum(counts, 1)
    ece = float(np.sum(counts * np.abs(accuracy - mean_conf)) / max(len(p), 1))
    return {
        "ece": ece,
        "bins": bins,
        "edges": edges.tolist(),
        "counts": counts.tolist(),
        "confidence": mean_conf.tolist(),
        "accuracy": accuracy.tolist(),
    }


def threshold_for_false_positive_rate(real_ai_probability: np.ndarray, max_rate: float) -> float:
    """The lowest threshold flagging at most `max_rate` of these real images as AI."""
    if not 0 <= max_rate < 1:
        raise InvalidArgumentError(f"max false-positive rate must be in [0, 1); received {max_rate}")
    scores = np.sort(np.asarray(real_ai_probability, dtype=np.float64))[::-1]
    if scores.size == 0:
        raise InvalidArgumentError("no real images to choose a threshold on")
    allowed = int(np.floor(max_rate * scores.size))
    # Every score strictly above scores[allowed] is flagged: at most `allowed` of them.
    return float(min(np.nextafter(scores[allowed], np.inf), 1.0))


def calibrate_card(
    card: ModelCard,
    uncalibrated: np.ndarray,
    is_ai: np.ndarray,
    *,
    threshold: float | None = None,
    max_false_positive_rate: float | None = None,
) -> ModelCard:
    """Fit the temperature on validation scores (P(AI) at temperature 1) and set the threshold.

    The threshold is `threshold` if given; else the lowest one flagging at most
    `max_false_positive_rate` of the validation's real images; else the card's own.
    """
    if threshold is not None and max_false_positive_rate is not None:
        raise InvalidArgumentError("give a threshold or a maximum false-positive rate, not both")
    truth = np.asarray(is_ai).astype(bool)
    temperature = fit_temperature(uncalibrated, truth)
    scores = apply_temperature(uncalibrated, temperature)
    if max_false_positive_rate is not None:
        threshold = threshold_for_false_positive_rate(scores[~truth], max_false_positive_rate)
    if threshold is None:
        threshold = card.threshold
    val = {
        "count": int(truth.size),
        "accuracy": float(np.mean((scores >= threshold) == truth)),
        "false_positive_rate": float(np.mean(scores[~truth] >= threshold)) if (~truth).any() else None,
        "ece_uncalibrated": reliability(truth, uncalibrated)["ece"],
        "ece": reliability(truth, scores)["ece"],
    }
    return card.with_updates(
        temperature=temperature, threshold=threshold, metrics={**card.metrics, "val": val}
    )
