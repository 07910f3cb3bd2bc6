"""Detector: paths, bytes and arrays in; one result record per input out, errors included."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import encode, random_image

import fakelens
from fakelens.errors import ModelLoadError
from fakelens.inference import Detector


@pytest.fixture(scope="module")
def detector(seed_model_file):
    return Detector.load(seed_model_file, batch_size=4)


def test_paths_bytes_and_arrays_agree(detector, tmp_path):
    array = random_image(11)
    path = tmp_path / "a.png"
    path.write_bytes(encode(array, "PNG"))
    records = detector.predict([path, encode(array, "PNG"), array])
    probabilities = {r.ai_probability for r in records}
    assert len(probabilities) == 1
    assert records[0].path == str(path) and records[1].path == "<bytes 1>"
    assert all(r.error is None and r.label in ("ai", "real") and r.model == detector.name for r in records)


def test_single_input_and_label_follows_threshold(detector):
    record = detector.predict(random_image(12))[0]
    assert record.label == ("ai" if record.ai_probability >= detector.card.threshold else "real")


def test_bad_inputs_get_error_records_and_the_rest_are_scored(detector, tmp_path):
    good = [random_image(i, (40, 30)) for i in range(9)]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    inputs = [*good[:5], bad, np.zeros((4, 4), dtype=np.uint8), *good[5:]]
    records = detector.predict(inputs)
    assert len(records) == 11
    assert [r.error is None for r in records] == [True] * 5 + [False, False] + [True] * 4
    assert "corrupt or truncated" in records[5].error and records[5].path == str(bad)
    assert "expected an (H, W, 3) uint8" in records[6].error
    # Batching (4 per batch) must not change any score.
    alone = [detector.predict(image)[0].ai_probability for image in good]
    batched = [r.ai_probability for r in records if r.error is None]
    assert np.allclose(alone, batched, atol=1e-6)


def test_empty_input_gives_no_records(detector):
    assert detector.predict([]) == []


def test_load_detector_by_path_and_unknown_name(seed_model_file):
    assert fakelens.load_detector(seed_model_file).name == "seed"
    with pytest.raises(ModelLoadError, match="no such model file or shipped model name"):
        fakelens.load_detector("no-such-model")


def test_prediction_record_has_the_documented_fields(detector):
    assert set(detector.predict(random_image(1))[0].to_dict()) == {
        "path",
        "label",
        "ai_probability",
        "model",
        "error",
    }
