"""Detector: paths, bytes and arrays in; one result record per input out, errors included."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import numpy as np
import pytest
from conftest import encode, random_image

import fakelens
from fakelens.config import InferenceConfig
from fakelens.errors import InvalidArgumentError, ModelLoadError
from fakelens.inference.detector import Detector


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


def test_label_follows_the_card_threshold(detector):
    image = random_image(12)
    p = detector.predict(image)[0].ai_probability
    below = Detector(detector.model, detector.card.with_updates(threshold=max(p - 0.01, 0.0)))
    above = Detector(detector.model, detector.card.with_updates(threshold=min(p + 0.01, 1.0)))
    assert below.predict(image)[0].label == "ai" and above.predict(image)[0].label == "real"


def test_bytes_like_inputs_and_unsupported_types(detector):
    data = encode(random_image(13), "PNG")
    records = detector.predict(
        [data, bytearray(data), memoryview(data), 42, np.zeros((2, 4, 4, 3), np.uint8)]
    )
    assert len({r.ai_probability for r in records[:3]}) == 1 and records[0].error is None
    assert "received int" in records[3].error
    assert "expected an (H, W, 3) uint8" in records[4].error


def test_parallel_batches_score_as_one_at_a_time_and_keep_the_order(detector):
    images = np.stack([random_image(100 + i) for i in range(4 * 5 + 3)])
    names = [str(i) for i in range(len(images))]
    one = Detector(detector.model, detector.card, batch_size=4)
    many = Detector(detector.model, detector.card, batch_size=4, parallel_batches=3)
    np.testing.assert_array_equal(one.predict_proba(images), many.predict_proba(images))
    streams = [[r for batch in d.score_stream(names, images.__getitem__) for r in batch] for d in (one, many)]
    assert streams[0] == streams[1] and [r.path for r in streams[1]] == names
    with pytest.raises(InvalidArgumentError, match="parallel_batches must be at least 1; received 0"):
        Detector(detector.model, detector.card, parallel_batches=0)


def test_loaded_models_score_batches_in_parallel():
    # onnxruntime runs each call on one thread (set per session), so batches go side by side.
    assert fakelens.load_detector("seed", backend="onnx").parallel_batches == InferenceConfig.parallel_batches


def test_nonsense_batch_size_and_workers_are_refused(detector):
    with pytest.raises(InvalidArgumentError, match="batch_size must be at least 1; received -1"):
        Detector(detector.model, detector.card, batch_size=-1)
    with pytest.raises(InvalidArgumentError, match="workers must be at least 1; received 0"):
        list(detector.score_stream(["a"], lambda i: random_image(1), workers=0))


def test_a_fifo_is_refused_not_waited_on(detector, tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    assert "not a regular file" in detector.predict(fifo)[0].error


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


def _decoding_threads(detector: Detector, cost_s: float, wait_s: float = 0.0, **options) -> int:
    """How many threads decoded the last 8 of 16 batches when each image costs `cost_s` of CPU,
    spent as decoders spend it (with the GIL released: hashing large blocks), and `wait_s` of
    waiting, as for a slow disk."""
    threads: set[int] = set()
    block, image = bytes(1 << 14), random_image(0)

    def load(index: int) -> np.ndarray:
        finish = time.thread_time() + cost_s
        while time.thread_time() < finish:
            hashlib.sha256(block)
        if wait_s:
            time.sleep(wait_s)
        if index >= 8 * detector.batch_size:
            threads.add(threading.get_ident())
        return image

    list(detector.score_stream([str(i) for i in range(16 * detector.batch_size)], load, **options))
    return len(threads)


def test_cheap_images_are_decoded_on_one_thread_costly_ones_on_all(detector, monkeypatch):
    # Cheap images: a second decoding thread would spend more on GIL hand-offs than it saves.
    # Thresholds far from every cost below, so a noisy machine cannot tip a batch across.
    monkeypatch.setattr(InferenceConfig, "parallel_decode_above_s", 400e-6)
    monkeypatch.setattr(InferenceConfig, "parallel_read_above_s", 1e-3)
    wide = Detector(detector.model, detector.card, batch_size=16)
    assert _decoding_threads(wide, 20e-6) == 1
    assert _decoding_threads(wide, 2e-3) == 2
    assert _decoding_threads(wide, 20e-6, wait_s=4e-3) == 2  # slow reads overlap
    assert _decoding_threads(wide, 20e-6, workers=2) == 2  # an explicit count is obeyed
