"""The HTTP API through FastAPI's TestClient: every endpoint, every limit, every error status."""

from __future__ import annotations

import base64
import io
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from conftest import bomb_png, encode, random_image
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin
from servers import BRIGHT, DARK, MeanBrightness, client_for, files, raw_request, stub_detector
from typer.testing import CliRunner

from fakelens.cli import app as cli
from fakelens.config import ServeConfig
from fakelens.inference.detector import Detector
from fakelens.models.card import ModelCard
from fakelens.serving.app import API_KEY_ENV, create_app
from fakelens.serving.batcher import MicroBatcher
from fakelens.serving.card_summary import summarize
from fakelens.serving.routes import get_service
from fakelens.serving.service import Service


@pytest.fixture
def client():
    with client_for() as test_client:
        yield test_client


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


MB = 2**20


def test_an_oversized_file_fails_alone_with_its_size_in_mb():
    with client_for(ServeConfig(max_upload_bytes=MB, max_files=3)) as small:
        big = b"x" * (3 * MB // 2)
        response = small.post(
            "/v1/predict", files=files(("ok.jpg", BRIGHT), ("big.png", big), ("dark.png", DARK))
        )
        assert response.status_code == 200
        ok, too_large, dark = response.json()["results"]
        assert (ok["label"], dark["label"], too_large["label"]) == ("real", "ai", None)
        assert too_large["error"] == "the file is 1.5 MB, over the 1 MB upload limit; send a smaller one"
        alone = small.post("/v1/predict", files=files(("big.png", big)))
        assert alone.status_code == 413 and alone.json()["results"][0]["error"] == too_large["error"]
        explained = small.post("/v1/explain", files=files(("big.png", big)))
        assert explained.status_code == 413 and explained.json()["result"]["error"] == too_large["error"]


def test_a_request_over_what_any_request_may_carry_is_refused_naming_the_file():
    with client_for(ServeConfig(max_upload_bytes=MB, max_files=2)) as small:
        response = small.post("/v1/predict", files=files(*[(f"{i}.jpg", BRIGHT) for i in range(3)]))
        assert response.status_code == 413
        assert response.json()["detail"] == "2.jpg: more than 2 files in one request; send them in batches"
        huge = small.post("/v1/predict", files=files(("huge.bin", b"x" * 3 * MB)))  # Content-Length: 3 MB
        detail = huge.json()["detail"]
        assert huge.status_code == 413 and detail.startswith("huge.bin: the request is 3 MB or more")
        assert "(2 files of at most 1 MB)" in detail and detail.count("huge.bin") == 1

        assert small.post("/v1/predict", files=files(("ok.jpg", BRIGHT))).status_code == 200


def test_a_streamed_body_is_refused_once_it_carries_more_than_any_request_may():
    """No Content-Length (chunked): the server counts what arrives and stops reading there."""
    head = (
        b"POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    part = b"--xyz\r\nContent-Disposition: form-data; name=files; filename=endless.bin\r\n\r\n"
    chunks = [part, *[b"x" * (MB // 2)] * 8]
    body = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for chunk in chunks]
    app = create_app(ServeConfig(max_upload_bytes=MB, max_files=2), detector=stub_detector())
    with live_server(app) as address:
        answer = raw_request(address, head, body, pause_s=0.0)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"endless.bin: the request is 2' in answer and b"MB or more, over the most" in answer


def test_parts_named_file_are_accepted_and_other_names_refused_with_the_accepted_ones(client):
    singular = client.post("/v1/predict", files=[("file", ("a.jpg", BRIGHT))])
    assert singular.status_code == 200 and singular.json()["results"][0]["label"] == "real"
    response = client.post("/v1/predict", files=[("files", ("a.jpg", BRIGHT)), ("image", ("b.jpg", BRIGHT))])
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "b.jpg: its part is named 'image'; send images as multipart/form-data parts named `files` (or `file`)"
    )


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
    assert card["summary"] == {
        "trained_on": "CIFAKE (32x32-pixel CIFAR-10 photos and Stable Diffusion images)",
        "measured": ["50.0% accurate on its test set"],
        "weak_on": [
            "photos larger than 32x32 pixels (shrunk whole to that size, their scores are weak evidence)"
        ],
    }


def test_the_summary_says_what_a_shipped_model_learned_from_and_where_it_is_weak():
    from fakelens.inference.detector import load_detector

    summary = summarize(load_detector("seed", backend="onnx").card)
    assert summary.measured == ["92.7% accurate on its test set (20,000 images)"]
    assert summary.weak_on[1:] == [  # the robustness battery in the card, worst first
        "blurred images (60% accurate)",
        "images shrunk and enlarged back (62% accurate)",
        "enlarged images (68% accurate)",
        "JPEG re-compression (85% accurate)",
    ]


def test_the_summary_of_a_probe_card_names_its_data_and_unseen_sources_and_skips_bad_figures():
    card = ModelCard(
        name="probe",
        architecture="probe:clip",
        input_size=(224, 224),
        fit="crop",
        metrics={
            "loso": {"mean_auroc": 0.8166, "sources": 14, "worst_auroc": 0.6718, "worst_source": "faces"},
            "test": {"sd-unsplash": {"accuracy": 0.865, "images": 200}, "odd": {"accuracy": "high"}},
            "robustness": {"blur_sigma1": {"accuracy": True}},
        },
        training={"data": ["../data/wild/wild.zip", "../data/sd-unsplash/"]},
    )
    summary = summarize(card)
    assert summary.trained_on == "wild and sd-unsplash"
    assert summary.measured == ["86.5% accurate on the sd-unsplash test set (200 images)"]
    assert summary.weak_on == [
        "image sources it never saw (AUROC 0.82 on average over 14 held out; 0.67 on faces)"
    ]


def test_routes_reach_the_service_through_a_dependency_that_tests_can_swap():
    card = ModelCard(name="swapped", architecture="mean-brightness")
    service = Service.start(Detector(MeanBrightness(), card, batch_size=2), ServeConfig())
    app = create_app(ServeConfig(model="never-loaded"))
    app.dependency_overrides[get_service] = lambda: service
    try:
        swapped = TestClient(app)  # without `with`: no lifespan, so the configured model never loads
        assert swapped.get("/v1/model").json()["name"] == "swapped"
        assert (
            swapped.post("/v1/predict", files=files(("a.jpg", BRIGHT))).json()["results"][0]["model"]
            == "swapped"
        )
        assert swapped.get("/readyz").json() == {"status": "ready", "model": "swapped"}
    finally:
        service.close()


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
    assert '<link rel="icon" href="/static/favicon.svg"' in page.text


def test_head_of_the_page_and_the_icon_answer_200(client):
    head = client.head("/")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-security-policy"]
    for icon in ("/favicon.ico", "/static/favicon.svg"):
        response = client.get(icon)
        assert response.status_code == 200 and response.headers["content-type"].startswith("image/svg+xml")
        assert response.text.startswith("<svg")


def test_serve_refuses_a_busy_port_in_one_line_with_exit_code_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--port", str(port), "--model", "seed"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: port {port} is already in use on 127.0.0.1; stop the program using it, or choose "
        "another port with --port"
    )


def test_serve_says_when_the_model_is_loaded_and_listening_and_where():
    command = [str(Path(sys.executable).parent / "fakelens"), "serve", "--port", "0", "--model", "seed"]
    process = subprocess.Popen([*command, "--backend", "onnx"], stdout=subprocess.PIPE, text=True)
    stop = threading.Timer(120, process.kill)  # a server that never says so fails the test, not hangs it
    stop.start()
    try:
        lines = iter(process.stdout.readline, "")
        ready = next(lines)  # the first line: a model that cannot load is its one line of error
        url = re.fullmatch(
            r"Ready: model seed, on (http://127\.0\.0\.1:\d+/) \(API docs at /docs\); Ctrl\+C stops\.\n",
            ready,
        )
        assert url, ready
        assert httpx.get(f"{url[1]}readyz").json() == {"status": "ready", "model": "seed"}
    finally:
        stop.cancel()
        process.terminate()
        process.wait(timeout=30)


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

    with client_for(detector=load_detector("seed", backend="keras")) as real:
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
        keras_score = load_detector("seed", backend="keras").predict([image])[0].ai_probability
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
