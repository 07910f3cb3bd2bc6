"""The shipped model still scores what its card says, on a fixed slice of the official test set."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from conftest import fixed_sample

import fakelens
from fakelens.weights import DEFAULT_MODEL, shipped_models


def test_default_model_ships():
    assert DEFAULT_MODEL in shipped_models()


@pytest.mark.slow
@pytest.mark.parametrize("name", shipped_models())
def test_shipped_model_matches_its_card_on_2000_test_images(name, cifake):
    detector = fakelens.load_detector(name)
    with zipfile.ZipFile(cifake / "cifake.zip") as archive:
        test_names = sorted(n for n in archive.namelist() if n.startswith("test/") and n.endswith(".jpg"))
        names = fixed_sample(test_names, 2000)
        records = detector.predict([archive.read(n) for n in names])
    assert not any(r.error for r in records)
    predicted_ai = np.array([r.label == "ai" for r in records])
    truth_ai = np.array(["/FAKE/" in n for n in names])
    accuracy = float(np.mean(predicted_ai == truth_ai))
    assert accuracy == pytest.approx(detector.card.metrics["test"]["accuracy"], abs=0.01)
