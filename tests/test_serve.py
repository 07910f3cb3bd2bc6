"""The HTTP API through FastAPI's TestClient: every endpoint, every limit, every error status."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import uvicorn
from conftest import bomb_png, encode, random_image
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin

from fakelens.config import ServeConfig
from fakelens.inference.detector import Detector
from fakelens.models.card import ModelCard
from fakelens.serving.app import API_KEY_ENV, create_app
from fakelens.serving.batcher import MicroBatcher


class MeanBrightness:
    """A stand-in model: P(REAL) = mean brightness, so bright images are real. Optionally slow."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s

    def predict_on_batch(self, images: np.ndarray) -> np.ndarray:
        time.sleep(self.delay_s)
        return images.reshape(len(images), -1).mean(axis=1, keepdims=True) / 255.0


def stub_detector(delay_s: float = 0.0) -> Detector:
    card = ModelCard(
        name="stub", architecture="mean-brightness", threshold=0.5, metrics={"test": {"accuracy": 0.5}}
    )
    return Detector(MeanBrightness(delay_s), card, batch_size=2)


def client_for(config: ServeConfig | None = None, detector: Detector | None = None) -> TestClient:
    return TestClient(create_app(config, detector=detector or stub_detector()))


@pytest.fixture
def client():
    with client_for() as test_client:
        yield test_client


BRIGHT = encode(np.full((32, 32, 3), 230, np.uint8))
DARK = encode(np.full((32, 32, 3), 20, np.uint8), "PNG")


def files(*items: tuple[str, bytes]) -> list:
    return [("files", (name, data, "application/octet-stream")) for name, data in items]


def test_predict_answers_each_file_in_order(client):
    response = client.post("/v1/predict", files=files(("bright.jpg", BRIGHT), ("dark.png", DARK)))
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "stub" and body["threshold"] == 0.5
    bright, dark = body["results"]
    assert (bright["path"], bright["label"], bright["error"]) == ("bright.jpg", "real", None)
    assert (dark["path"], dark["label"]) == ("dark.png", "ai")
    assert dark["ai_probability"] == pytest.approx(1 - 20 / 255, abs=0.01)
    assert set(bright) == {"path", "label", "ai_probability", "model", "error"}


def test_bad_files_get_their_reason_and_the_others_are_answered(client):
    truncated = encode(random_image(1, (64, 64)))[:300]
    response = client.post(
        "/v1/predict",
        files=files(("notes.jpg", b"just some text"), ("good.jpg", BRIGHT), ("cut.jpg", truncated)),
    )
    assert response.status_code == 200
    notes, good, cut = response.json()["results"]
    assert notes["label"] is None and "not a recognised image format" in notes["error"]
    assert good["label"] == "real" and good["error"] is None
    assert "corrupt or truncated" in cut["error"]


@pytest.mark.parametrize(
    ("payload", "status", "reason"),
    [
        (b"<html>not an image</html>", 415, "not a recognised image format"),
        (encode(random_image(2, (64, 64)))[:200], 422, "corrupt or truncated"),
        (bomb_png(), 422, "decompression bomb"),
    ],
)
def test_a_request_with_no_readable_image_gets_415_or_422_naming_the_file(client, payload, status, reason):
    response = client.post("/v1/predict", files=files(("upload.jpg", payload)))
    assert response.status_code == status
    (record,) = response.json()["results"]
    assert record["path"] == "upload.jpg" and reason in record["error"]


def test_upload_size_and_file_count_limits_answer_413():
    with client_for(ServeConfig(max_upload_bytes=2_000, max_files=2)) as small:
        response = small.post("/v1/predict", files=files(("ok.jpg", BRIGHT), ("big.png", b"x" * 2_001)))
        assert (
            response.status_code == 413
            and "big.png: file is over the 2,000-byte" in response.json()["detail"]
        )
        response = small.post("/v1/predict", files=files(*[(f"{i}.jpg", BRIGHT) for i in range(3)]))
        assert response.status_code == 413 and "more than 2 files" in response.json()["detail"]
        huge = small.post("/v1/predict", files=files(("huge.bin", b"x" * 100_000)))
        assert huge.status_code == 413 and "request body of" in huge.json()["detail"]
        assert small.post("/v1/predict", files=files(("ok.jpg", BRIGHT))).status_code == 200


def test_the_pixel_limit_is_configurable():
    with client_for(ServeConfig(max_pixels=32 * 32)) as strict:
        large = encode(np.full((64, 64, 3), 200, np.uint8))
        response = strict.post("/v1/predict", files=files(("large.jpg", large), ("small.jpg", BRIGHT)))
        large_record, small_record = response.json()["results"]
        assert "over the 1,024-pixel limit" in large_record["error"] and small_record["label"] == "real"


@pytest.mark.parametrize(
    ("headers", "body", "detail"),
    [
        ({"content-type": "application/json"}, b"{}", "multipart/form-data"),
        (
            {"content-type": "multipart/form-data; boundary=xyz"},
            b"--xyz\r\nContent-Disposition: form-data",
            "ends",
        ),
        ({"content-type": "multipart/form-data; boundary=xyz"}, b"--xyz--\r\n", "no files"),
    ],
)
def test_malformed_requests_answer_400(client, headers, body, detail):
    response = client.post("/v1/predict", content=body, headers=headers)
    assert response.status_code == 400 and detail in response.json()["detail"]


@contextmanager
def live_server(app) -> Iterator[tuple[str, int]]:
    """`app` under uvicorn on a free loopback port, in a thread: real sockets, real timing."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield server.servers[0].sockets[0].getsockname()[:2]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def raw_request(address: tuple[str, int], head: bytes, body_parts: list[bytes], pause_s: float) -> bytes:
    """Send a request's head and body parts with pauses between them; return the response."""
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(head)
        for part in body_parts:
            time.sleep(pause_s)
            try:
                connection.sendall(part)
            except OSError:  # the server answered and closed already
                break
        return connection.recv(65536)


def test_a_slow_upload_times_out_with_408_and_the_server_stays_up():
    body = [
        b"--xyz\r\nContent-Disposition: form-data; name=files; filename=a.jpg\r\n\r\n",
        BRIGHT + b"\r\n--xyz--\r\n",
    ]
    head = (
        b"POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
        + f"Content-Length: {sum(map(len, body))}\r\n\r\n".encode()
    )
    with live_server(create_app(ServeConfig(request_timeout_s=0.3), detector=stub_detector())) as address:
        assert raw_request(address, head, body, pause_s=1.0).startswith(b"HTTP/1.1 408")
        assert raw_request(address, head, body, pause_s=0.0).startswith(b"HTTP/1.1 200")


def test_a_model_slower_than_the_timeout_answers_503_and_the_server_recovers():
    with client_for(ServeConfig(request_timeout_s=0.1), stub_detector(delay_s=0.3)) as slow:
        assert slow.post("/v1/predict", files=files(("a.jpg", BRIGHT))).status_code == 503
        time.sleep(0.4)
        assert slow.get("/readyz").status_code == 200


def test_api_key_is_required_when_set(monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "s3cret")
    with client_for() as guarded:
        assert guarded.post("/v1/predict", files=files(("a.jpg", BRIGHT))).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        response = guarded.get("/v1/model", headers=wrong)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        right = {"Authorization": "Bearer s3cret"}
        assert guarded.post("/v1/predict", files=files(("a.jpg", BRIGHT)), headers=right).status_code == 200
        assert guarded.get("/healthz").status_code == 200 and guarded.get("/").status_code == 200


def test_the_key_is_checked_before_the_upload_is_read(monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "s3cret")
    with client_for(ServeConfig(max_upload_bytes=100)) as guarded:
        assert guarded.post("/v1/predict", files=files(("big.jpg", BRIGHT))).status_code == 401


def test_model_card_health_and_readiness(client):
    card = client.get("/v1/model").json()
    assert card["name"] == "stub" and card["threshold"] == 0.5 and card["metrics"]["test"]["accuracy"] == 0.5
    assert "output" not in card and card["fakelens_version"]
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "model": "stub"}
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]


def test_not_ready_before_the_model_is_loaded():
    unstarted = client_for()  # without `with`, the lifespan (model loading) has not run
    assert unstarted.get("/readyz").status_code == 503
    assert unstarted.get("/healthz").status_code == 200


def test_cors_is_off_unless_origins_are_given(client):
    origin = {"Origin": "https://example.org"}
    assert "access-control-allow-origin" not in client.get("/v1/model", headers=origin).headers
    with client_for(ServeConfig(cors_origins=("https://example.org",))) as open_client:
        allowed = open_client.get("/v1/model", headers=origin).headers
        assert allowed["access-control-allow-origin"] == "https://example.org"


def test_the_page_and_its_assets_are_served_with_no_outside_references(client):
    page = client.get("/")
    assert page.status_code == 200 and "Choose images" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        response = client.get(asset)
        assert response.status_code == 200 and response.headers["x-content-type-options"] == "nosniff"
        assert "http://" not in response.text and "https://" not in response.text
    assert "https://" not in page.text and "http://" not in page.text


def test_the_shipped_model_gives_the_same_scores_as_the_python_api():
    from fakelens.inference.detector import load_detector

    detector = load_detector("seed")
    images = [encode(random_image(seed)) for seed in range(5)]
    expected = [record.ai_probability for record in detector.predict(images)]
    with client_for(detector=detector) as real:
        response = real.post(
            "/v1/predict", files=files(*[(f"{i}.jpg", data) for i, data in enumerate(images)])
        )
    assert [r["ai_probability"] for r in response.json()["results"]] == pytest.approx(expected, abs=1e-6)


def test_the_batcher_groups_concurrent_requests_and_routes_each_answer_back():
    calls: list[int] = []
    inside = threading.Lock()

    def score(images: np.ndarray) -> np.ndarray:
        assert inside.acquire(blocking=False), "the model was called from two threads at once"
        try:
            calls.append(len(images))
            time.sleep(0.01)
            return images[:, 0].astype(float)
        finally:
            inside.release()

    batcher = MicroBatcher(score, window_s=0.05, max_batch=64)
    futures = {}

    def submit(i: int) -> None:
        futures[i] = batcher.submit(np.array([[i], [i + 0.5]]))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = {i: future.result(timeout=5) for i, future in futures.items()}
    batcher.close()
    assert all(list(results[i]) == [i, i + 0.5] for i in range(20))
    assert sum(calls) == 40 and len(calls) < 20 and max(calls) <= 64


def test_a_model_failure_reaches_every_waiting_request():
    def broken(images: np.ndarray) -> np.ndarray:
        raise RuntimeError("model exploded")

    batcher = MicroBatcher(broken, window_s=0.0, max_batch=8)
    future = batcher.submit(np.zeros((1, 1)))
    with pytest.raises(RuntimeError, match="model exploded"):
        future.result(timeout=5)
    assert batcher.alive
    batcher.close()
    assert not batcher.alive


def test_exclusive_work_runs_on_the_model_thread_between_batches():
    threads: set[str] = set()

    def score(images: np.ndarray) -> np.ndarray:
        threads.add(threading.current_thread().name)
        return images[:, 0].astype(float)

    batcher = MicroBatcher(score, window_s=0.01, max_batch=8)
    batch = batcher.submit(np.ones((2, 1)))
    task = batcher.run_exclusive(lambda: threading.current_thread().name)
    failing = batcher.run_exclusive(lambda: 1 / 0)
    assert list(batch.result(timeout=5)) == [1.0, 1.0]
    assert {task.result(timeout=5)} == threads == {"fakelens-batcher"}
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=5)
    batcher.close()


def test_parallel_batches_overlap_up_to_the_limit_and_exclusive_work_runs_alone():
    lock = threading.Lock()
    running, most, seen_by_task = [0], [0], []

    def score(images: np.ndarray) -> np.ndarray:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return images[:, 0].astype(float)

    batcher = MicroBatcher(score, window_s=0.0, max_batch=1, parallel=2)
    futures = [batcher.submit(np.full((1, 1), i)) for i in range(6)]
    task = batcher.run_exclusive(lambda: seen_by_task.append(running[0]))
    later = batcher.submit(np.full((1, 1), 6))
    assert [float(f.result(timeout=5)[0]) for f in [*futures, later]] == list(range(7))
    task.result(timeout=5)
    batcher.close()
    assert most[0] == 2 and seen_by_task == [0]


def png_with_text(**chunks: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    return encode(np.full((32, 32, 3), 120, np.uint8), "PNG", pnginfo=info)


def test_evidence_is_added_only_when_asked_for(client):
    generated = png_with_text(parameters="a cat\nSteps: 20, Sampler: Euler a, Model: sd_xl_base_1.0")
    plain = client.post("/v1/predict", files=files(("gen.png", generated))).json()["results"][0]
    assert "evidence" not in plain
    response = client.post(
        "/v1/predict?evidence=true", files=files(("gen.png", generated), ("x.jpg", b"text"))
    )
    found, broken = response.json()["results"]
    assert any(e["kind"] == "png_text" and e["points_to"] == "ai" for e in found["evidence"])
    assert found["ai_probability"] == plain["ai_probability"]  # reported beside the score, never merged
    assert broken["evidence"] == [] and broken["error"]


def test_declared_is_answered_beside_the_score(client):
    generated = png_with_text(parameters="a cat\nSteps: 20, Sampler: Euler a, Model: sd_xl_base_1.0")
    packet = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        b'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"/>'
        b"</rdf:RDF></x:xmpmeta>"
    )
    declared_jpeg = encode(np.full((32, 32, 3), 230, np.uint8), xmp=packet)
    uploads = files(
        ("gen.png", generated), ("xmp.jpg", declared_jpeg), ("plain.jpg", BRIGHT), ("x.jpg", b"text")
    )
    plain = client.post("/v1/predict", files=uploads).json()["results"]
    assert all("declared" not in r for r in plain)
    results = client.post("/v1/predict?evidence=true", files=uploads).json()["results"]
    assert [r["declared"] for r in results] == [
        "ai: PNG text (Stable Diffusion WebUI parameters)",
        "ai: IPTC digital source type trainedAlgorithmicMedia (XMP)",
        None,
        None,
    ]
    # The stub scores brightness alone: the bright JPEG stays "real" whatever its metadata declares.
    assert results[1]["label"] == plain[1]["label"] == "real"
    assert [r["ai_probability"] for r in results] == [r["ai_probability"] for r in plain]
    schema = client.get("/openapi.json").json()["components"]["schemas"]["Result"]["properties"]
    assert "Never merged into ai_probability" in schema["declared"]["description"]


@pytest.fixture(scope="module")
def shipped_client():
    from fakelens.inference.detector import load_detector

    with client_for(detector=load_detector("seed")) as real:
        yield real


def test_explain_returns_the_verdict_a_heatmap_overlay_and_evidence(shipped_client):
    image = encode(random_image(7, (48, 64)))
    predicted = shipped_client.post("/v1/predict", files=files(("a.jpg", image))).json()["results"][0]
    response = shipped_client.post("/v1/explain", files=files(("a.jpg", image)))
    assert response.status_code == 200
    body = response.json()
    assert body["result"]["label"] == predicted["label"]
    assert body["result"]["ai_probability"] == pytest.approx(predicted["ai_probability"], abs=1e-6)
    assert body["result"]["evidence"] == [] and body["heatmap_layer"]
    assert body["heatmap_method"] == "gradcam"
    assert body["result"]["declared"] is None
    overlay = Image.open(io.BytesIO(base64.b64decode(body["heatmap_png"])))
    assert overlay.format == "PNG" and overlay.width >= 400


def test_explain_refuses_several_files_and_names_a_bad_one(shipped_client):
    two = files(("a.jpg", BRIGHT), ("b.jpg", BRIGHT))
    assert shipped_client.post("/v1/explain", files=two).status_code == 400
    response = shipped_client.post("/v1/explain", files=files(("notes.jpg", b"plain text")))
    assert response.status_code == 415
    assert response.json()["result"]["error"] == "not a recognised image format"
    assert response.json()["heatmap_png"] is None


def test_models_without_keras_gradients_are_explained_by_occlusion(client):
    """The light runtime (ONNX) and any other model scored by `predict_on_batch` alone."""
    from fakelens.inference.detector import load_detector

    stub = client.post("/v1/explain", files=files(("a.jpg", BRIGHT))).json()
    assert stub["heatmap_method"] == "occlusion" and stub["heatmap_layer"] is None
    with client_for(detector=load_detector("seed", backend="onnx")) as light:
        image = encode(random_image(9, (48, 64)))
        keras_score = load_detector("seed").predict([image])[0].ai_probability
        record = light.post("/v1/predict", files=files(("a.jpg", image))).json()["results"][0]
        assert record["ai_probability"] == pytest.approx(keras_score, abs=1e-4)
        response = light.post("/v1/explain", files=files(("a.jpg", image)))
        assert response.status_code == 200
        body = response.json()
        assert body["heatmap_method"] == "occlusion" and body["heatmap_layer"] is None
        assert body["result"]["ai_probability"] == pytest.approx(record["ai_probability"], abs=1e-6)
        overlay = Image.open(io.BytesIO(base64.b64decode(body["heatmap_png"])))
        assert overlay.format == "PNG" and overlay.width >= 400


def test_the_heap_is_trimmed_after_large_uploads_at_most_once_per_interval_and_after_a_burst():
    from fakelens.serving.memory import HeapTrimmer

    calls = []
    trimmer = HeapTrimmer(interval_s=0.3, release=lambda: calls.append(0))  # counts, for malloc_trim
    trimmer.after_large_request()
    trimmer.after_large_request()
    trimmer.after_large_request()
    assert calls == [0]  # the others fall within the interval...
    time.sleep(0.6)
    assert calls == [0, 0]  # ...and are covered by one trim when it is over


def test_small_requests_never_trim(client, monkeypatch):
    from fakelens.serving.memory import HeapTrimmer

    calls = []
    monkeypatch.setattr(HeapTrimmer, "after_large_request", lambda self: calls.append(1))
    client.post("/v1/predict", files=files(("a.jpg", BRIGHT)))
    assert calls == []
    client.post("/v1/predict", files=files(("big.png", b"x" * (1 << 20))))
    assert calls == [1]
