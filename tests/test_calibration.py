"""Temperature scaling, ECE and operating thresholds on synthetic scores with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from fakelens.errors import InvalidArgumentError
from fakelens.evaluation.calibration import (
    calibrate_card,
    fit_temperature,
    reliability,
    threshold_for_false_positive_rate,
)
from fakelens.models.card import ModelCard, apply_temperature


def calibrated_sample(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores that are calibrated by construction: the label is drawn with probability p."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.99, n)
    return p, (rng.uniform(size=n) < p).astype(int)


def test_fit_temperature_undoes_a_known_overconfidence():
    p, y = calibrated_sample(50_000)
    overconfident = apply_temperature(p, 1 / 2.5)  # logits multiplied by 2.5
    assert fit_temperature(overconfident, y) == pytest.approx(2.5, rel=0.05)
    assert fit_temperature(p, y) == pytest.approx(1.0, rel=0.05)


def test_ece_is_near_zero_when_calibrated_and_large_when_not():
    p, y = calibrated_sample(50_000, seed=1)
    assert reliability(y, p)["ece"] < 0.01
    assert reliability(y, apply_temperature(p, 0.3))["ece"] > 0.05
    bins = reliability(y, p, bins=15)
    assert len(bins["counts"]) == 15 and sum(bins["counts"]) == 50_000


def test_ece_of_a_hand_checked_case():
    # Two predictions at confidence 0.9, one right one wrong: |0.5 - 0.9| = 0.4.
    assert reliability(np.array([1, 0]), np.array([0.9, 0.9]))["ece"] == pytest.approx(0.4)


def test_threshold_for_false_positive_rate_is_exact():
    real = np.linspace(0, 0.999, 101)  # 101 real photos; calibrated scores never reach 1
    t = threshold_for_false_positive_rate(real, 0.05)
    assert np.sum(real >= t) == 5
    assert np.sum(real >= threshold_for_false_positive_rate(real, 0.0)) == 0
    with pytest.raises(InvalidArgumentError, match="received 1.5"):
        threshold_for_false_positive_rate(real, 1.5)


def test_calibrate_card_stores_temperature_threshold_and_validation_figures():
    p, y = calibrated_sample(20_000, seed=2)
    card = ModelCard(name="m", architecture="patchres", output="p_ai")
    fitted = calibrate_card(card, apply_temperature(p, 0.5), y, max_false_positive_rate=0.1)
    assert fitted.temperature == pytest.approx(2.0, rel=0.1)
    val = fitted.metrics["val"]
    assert val["false_positive_rate"] <= 0.1 and val["ece"] < val["ece_uncalibrated"]
    fixed = calibrate_card(card, p, y, threshold=0.7)
    assert fixed.threshold == 0.7
    with pytest.raises(InvalidArgumentError, match="not both"):
        calibrate_card(card, p, y, threshold=0.7, max_false_positive_rate=0.1)
