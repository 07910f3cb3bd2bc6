"""Calibrate a model on its own validation split and choose its operating point."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fakelens.data.cache import DecodedSet
from fakelens.data.dataset import load_labelled, train_val
from fakelens.errors import InvalidArgumentError
from fakelens.evaluation.calibration import calibrate_card
from fakelens.inference.detector import Detector
from fakelens.models.card import ModelCard
from fakelens.models.saving import load_model, save_model


def calibrate_on(
    model,
    card: ModelCard,
    val_set: DecodedSet,
    *,
    threshold: float | None = None,
    max_false_positive_rate: float | None = None,
) -> ModelCard:
    """The card with temperature fitted and threshold chosen on `val_set`."""
    raw = Detector(model, card.with_updates(temperature=1.0)).predict_proba(np.asarray(val_set.images))
    return calibrate_card(
        card, raw, val_set.is_ai, threshold=threshold, max_false_positive_rate=max_false_positive_rate
    )


def recalibrate(
    model_path: Path,
    data_path: Path,
    out: Path,
    *,
    threshold: float | None = None,
    max_false_positive_rate: float | None = None,
    quiet: bool = False,
) -> ModelCard:
    """Rebuild the model's validation split from its card, recalibrate, save to `out`."""
    model, card = load_model(model_path, compile=False)
    record = card.training
    if not record:
        raise InvalidArgumentError(
            f"{model_path}: its card has no training record to rebuild the validation split"
        )
    data = load_labelled(data_path, card.input_size, quiet=quiet)
    if data.key != record["data_key"]:
        raise InvalidArgumentError(
            f"{data_path} is not the data {model_path} was trained on (data hash {data.key}, "
            f"expected {record['data_key']}); its validation split cannot be rebuilt from it"
        )
    _, val_set = train_val(data, record["val_fraction"], record["seed"], record["limit"])
    calibrated = calibrate_on(
        model, card, val_set, threshold=threshold, max_false_positive_rate=max_false_positive_rate
    )
    save_model(model, calibrated, out)
    return calibrated
