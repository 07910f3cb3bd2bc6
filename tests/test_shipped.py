"""The shipped model still scores what its card says, on a fixed slice of the official test set."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from conftest import REPO, fixed_sample

import fakelens
from fakelens.data.decode import decode_image
from fakelens.data.views import JUDGING_QUALITY, encode
from fakelens.evaluation.metrics import auroc
from fakelens.inference.routing import RoutedDetector
from fakelens.weights import DEFAULT_MODEL, shipped_model_path, shipped_models

CIFAKE_MODELS = [name for name in shipped_models() if shipped_model_path(name).suffix == ".keras"]
SD_UNSPLASH = REPO.parent / "shared" / "data" / "sd-unsplash" / "sd-unsplash.zip"


def test_default_model_routes_between_shipped_models(clip_encoder):
    detector = fakelens.load_detector(DEFAULT_MODEL)
    assert isinstance(detector, RoutedDetector)
    assert {detector.large.name, detector.small.name} <= set(shipped_models())


def cifake_accuracy(detector, cifake) -> float:
    with zipfile.ZipFile(cifake / "cifake.zip") as archive:
        test_names = sorted(n for n in archive.namelist() if n.startswith("test/") and n.endswith(".jpg"))
        names = fixed_sample(test_names, 2000)
        records = detector.predict([archive.read(n) for n in names])
    assert not any(r.error for r in records)
    predicted_ai = np.array([r.label == "ai" for r in records])
    truth_ai = np.array(["/FAKE/" in n for n in names])
    return float(np.mean(predicted_ai == truth_ai))


@pytest.mark.slow
@pytest.mark.parametrize("name", CIFAKE_MODELS)
def test_shipped_model_matches_its_card_on_2000_test_images(name, cifake):
    detector = fakelens.load_detector(name)
    assert cifake_accuracy(detector, cifake) == pytest.approx(
        detector.card.metrics["test"]["accuracy"], abs=0.01
    )


@pytest.mark.slow
def test_the_default_judges_cifake_images_as_patchres_does(cifake, clip_encoder):
    patchres = fakelens.load_detector("patchres")
    assert cifake_accuracy(fakelens.load_detector(DEFAULT_MODEL), cifake) == pytest.approx(
        patchres.card.metrics["test"]["accuracy"], abs=0.01
    )


@pytest.mark.slow
def test_clipprobe_matches_its_card_on_the_sd_unsplash_test_half(clip_encoder):
    if not SD_UNSPLASH.is_file():
        pytest.skip(f"{SD_UNSPLASH} not found")
    detector = fakelens.load_detector("clipprobe")
    with zipfile.ZipFile(SD_UNSPLASH) as archive:
        names = sorted(n for n in archive.namelist() if n.startswith("test/") and n[-4:] in (".jpg", ".png"))
        # The data set's protocol: every image re-encoded as JPEG q90 (its classes differ in format).
        images = [encode(decode_image(archive.read(n)), "JPEG", JUDGING_QUALITY) for n in names]
    scores = np.array([r.ai_probability for r in detector.predict(images)])
    truth = np.array(["/FAKE/" in n for n in names])
    assert auroc(truth, scores) == pytest.approx(
        detector.card.metrics["test"]["sd-unsplash"]["auroc"], abs=0.005
    )
