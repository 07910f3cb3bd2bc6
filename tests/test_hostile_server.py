"""The HTTP server under hostile uploads (issue 19, server side): files too slow to decode, small
files with huge canvases, metadata that makes a reader raise, names that are markup.

The request timeout covers decoding and evidence; a file over it is answered as timed out while
the others are judged; a full backlog answers 503 at once; /healthz answers within a second
meanwhile; an unexpected exception is a JSON 500 with no traceback; memory returns to its
baseline. The hostile files are made here, in code.
"""

from __future__ import annotations

import logging
import os
import struct
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
from conftest import encode, random_image
from fastapi.testclient import TestClient
from hostile import Case, save
from hostile_decode import animated_webp, gif, huge_canvases, segments, slow_decodes
from hostile_metadata import c2pa_cases, every_case, exif_cases, xmp_cases
from PIL import Image
from servers import files, free_port, serving

from fakelens.config import ServeConfig
from fakelens.inference.detector import Detector, load_detector
from fakelens.serving import service as service_module
from fakelens.serving.app import create_app
from fakelens.serving.decoding import LIGHT_FILE_BYTES
from fakelens.serving.memory import HeapTrimmer

GOOD_PIXELS = random_image(5, (48, 64))
GOOD = encode(GOOD_PIXELS)
MARKUP_NAME = "<img src=x onerror=alert(document.domain)>.jpg"


def refining_jpeg(side: int, scans: int) -> bytes:
    """A grey progressive JPEG whose luma AC refinement scan is repeated until it has `scans`:
    16 bytes each, yet each walks all 63 coefficients of every block (3 s for 490 scans at
    2000 x 2000), where `hostile_decode.progressive_jpeg`'s repeated scan skips blocks in runs."""
    data = save(Image.new("RGB", (side, side), (120, 130, 140)), "JPEG", progressive=True, quality=50)
    # libjpeg's simple progression: the sixth scan refines the luma AC coefficients (Ah=2, Al=1).
    sos = [segment for segment in segments(data) if segment[0] == 0xDA]
    _, start, end = sos[5]
    assert data[start + 7 : start + 10] == b"\x01\x3f\x21", "an AC refinement scan"
    return data[: sos[-1][2]] + data[start:end] * (scans - len(sos)) + data[sos[-1][2] :]


def uploadable(cases: Sequence[Case]) -> list[Case]:
    """The cases within the server's upload limit (the others are answered as too large)."""
    return [case for case in cases if len(case.data) <= ServeConfig.max_upload_bytes]


@pytest.fixture(scope="module")
def detector() -> Detector:
    """The shipped model on the light runtime: loads in a fraction of a second."""
    return load_detector("seed", backend="onnx")


@contextmanager
def client_for(detector: Detector, **config: float) -> Iterator[TestClient]:
    app = create_app(ServeConfig(**config), detector=detector)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def slow_decoding(monkeypatch) -> threading.Event:
    """Files named slow-* take until the returned event is set (at most 5 s) to decode."""
    release = threading.Event()
    decode = service_module.load_image

    def load_image(data, size, *, name=None, **options):
        if name and name.startswith("slow-"):
            release.wait(5)
        return decode(data, size, name=name, **options)

    monkeypatch.setattr(service_module, "load_image", load_image)
    yield release
    release.set()


def test_a_file_too_slow_to_decode_is_answered_as_timed_out_and_the_others_are_judged(
    detector, slow_decoding
):
    with client_for(detector, request_timeout_s=0.5) as client:
        started = time.monotonic()
        response = client.post("/v1/predict", files=files(("slow-a.jpg", GOOD), ("good.jpg", GOOD)))
        assert time.monotonic() - started < 1.5
        assert response.status_code == 200
        slow, good = response.json()["results"]
        assert slow["label"] is None and "not decoded within the 0.5 s request timeout" in slow["error"]
        assert good["label"] in ("ai", "real") and good["error"] is None

        alone = client.post("/v1/predict", files=files(("slow-b.jpg", GOOD)))
        assert alone.status_code == 504 and "request timeout" in alone.json()["results"][0]["error"]
        explained = client.post("/v1/explain", files=files(("slow-c.jpg", GOOD)))
        assert explained.status_code == 504 and explained.json()["heatmap_png"] is None
        assert client.get("/healthz").status_code == 200


def test_a_real_slow_jpeg_is_cut_off_at_the_deadline(detector):
    """Hundreds of refinement scans, within the decoder's limits: a second of decoding in C, which
    no thread can interrupt."""
    slow = refining_jpeg(1000, 490)  # within the decoder's scan limits: about a second
    with client_for(detector, request_timeout_s=0.3) as client:
        started = time.monotonic()
        response = client.post("/v1/predict", files=files(("scans.jpg", slow), ("good.jpg", GOOD)))
        elapsed = time.monotonic() - started
    assert response.status_code == 200 and elapsed < 1.5, elapsed
    scans, good = response.json()["results"]
    assert "not decoded within the 0.3 s request timeout" in scans["error"] and good["error"] is None


def test_a_full_backlog_is_refused_with_503_at_once_instead_of_queueing(detector, slow_decoding, monkeypatch):
    monkeypatch.setattr(service_module, "READ_BACKLOG", 2)
    with client_for(detector, request_timeout_s=0.3) as client:
        stuck = client.post("/v1/predict", files=files(("slow-1.jpg", GOOD), ("slow-2.jpg", GOOD)))
        assert stuck.status_code == 504  # both abandoned, both still decoding
        started = time.monotonic()
        refused = client.post("/v1/predict", files=files(("good.jpg", GOOD)))
        assert refused.status_code == 503 and time.monotonic() - started < 0.3
        assert "busy decoding 2 files" in refused.json()["detail"]
        assert refused.headers["retry-after"] == "5"
        slow_decoding.set()
        deadline = time.monotonic() + 5
        while client.post("/v1/predict", files=files(("good.jpg", GOOD))).status_code != 200:
            assert time.monotonic() < deadline, "the backlog never drained"
            time.sleep(0.05)


def test_small_files_are_not_queued_behind_slow_ones(detector, slow_decoding):
    """Files over a megabyte are read on the heavy lane: two requests of slow ones fill it."""
    big = encode(random_image(8, (700, 700)), "PNG")
    assert len(big) > LIGHT_FILE_BYTES
    with client_for(detector, request_timeout_s=3) as client, ThreadPoolExecutor(2) as pool:
        slow = files(*[(f"slow-{i}.png", big) for i in range(4)])
        stuck = [pool.submit(client.post, "/v1/predict", files=slow) for _ in range(2)]
        time.sleep(0.5)
        started = time.monotonic()
        small = files(("good.jpg", GOOD), ("good.png", encode(GOOD_PIXELS, "PNG")))
        response = client.post("/v1/predict", files=small)
        assert time.monotonic() - started < 1.0 and not any(future.done() for future in stuck)
        assert response.status_code == 200 and all(r["error"] is None for r in response.json()["results"])
        slow_decoding.set()
        assert [future.result().status_code for future in stuck] == [200, 200]


def test_a_huge_canvas_in_a_tiny_upload_trims_the_heap(detector, monkeypatch):
    calls = []
    monkeypatch.setattr(HeapTrimmer, "after_large_request", lambda self: calls.append(1))
    canvas = gif(4000, 4000)
    assert len(canvas) < 100
    with client_for(detector) as client:
        assert client.post("/v1/predict", files=files(("canvas.gif", canvas))).status_code == 200
        assert calls == [1]
        client.post("/v1/predict", files=files(("small.jpg", GOOD)))
        assert calls == [1]


def test_an_exception_in_a_decoder_is_that_files_error(detector, monkeypatch):
    decode = service_module.load_image

    def load_image(data, size, *, name=None, **options):
        if name == "boom.jpg":
            raise MemoryError("cannot allocate the canvas")
        return decode(data, size, name=name, **options)

    monkeypatch.setattr(service_module, "load_image", load_image)
    with client_for(detector) as client:
        response = client.post("/v1/predict", files=files(("boom.jpg", GOOD), ("good.jpg", GOOD)))
    assert response.status_code == 200
    boom, good = response.json()["results"]
    assert boom["error"] == "could not be decoded (MemoryError: cannot allocate the canvas)"
    assert good["error"] is None


def test_an_exception_reading_evidence_becomes_a_finding_and_the_score_stands(detector, monkeypatch):
    read = service_module.with_evidence

    def with_evidence(record, data):
        if record.path == "bad-meta.png":
            raise AssertionError("Pillow's zTXt assertion")
        return read(record, data)

    monkeypatch.setattr(service_module, "with_evidence", with_evidence)
    png = encode(random_image(6, (40, 40)), "PNG")
    with client_for(detector) as client:
        plain = client.post("/v1/predict", files=files(("bad-meta.png", png))).json()["results"][0]
        for route in ("/v1/predict?evidence=true", "/v1/explain"):
            response = client.post(route, files=files(("bad-meta.png", png)))
            assert response.status_code == 200, response.text
            body = response.json()
            record = body["results"][0] if "results" in body else body["result"]
            assert record["ai_probability"] == pytest.approx(plain["ai_probability"], abs=1e-6)
            (finding,) = record["evidence"]
            assert (finding["kind"], finding["key"], finding["points_to"]) == (
                "metadata",
                "unreadable",
                "unknown",
            )
            assert "AssertionError" in finding["value"] and "zTXt" not in finding["value"]


def test_hostile_metadata_never_costs_a_request_its_other_answers(detector):
    """Each case is answered per file, with its evidence (or what could not be read of it),
    beside a good file in the same request; decoding them is the decoder's concern."""
    cases = uploadable([*exif_cases(), *xmp_cases(), *c2pa_cases()])  # the PNG text ones: slow to make
    with client_for(detector) as client:
        for start in range(0, len(cases), 15):
            batch = [(case.name, case.data) for case in cases[start : start + 15]]
            response = client.post("/v1/predict?evidence=true", files=files(*batch, ("good.jpg", GOOD)))
            assert response.status_code == 200, response.text[:300]
            *records, good = response.json()["results"]
            assert [record["path"] for record in records] == [name for name, _ in batch]
            assert all(isinstance(record["evidence"], list) for record in records)
            assert good["label"] in ("ai", "real")
        for case in cases[:: len(cases) // 3]:
            response = client.post("/v1/explain", files=files((case.name, case.data)))
            assert response.status_code in (200, 422), (case.name, response.text[:300])


def test_an_unexpected_exception_is_a_json_500_without_a_traceback(detector, monkeypatch, caplog):
    async def predict(self, uploads, *, evidence=False):
        raise RuntimeError("secret internals /etc/fakelens")

    monkeypatch.setattr(service_module.Service, "predict", predict)
    with client_for(detector) as client, caplog.at_level(logging.ERROR):
        response = client.post("/v1/predict", files=files(("a.jpg", GOOD)))
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/json"
        assert "internal error" in response.json()["detail"] and "secret" not in response.text
        assert client.get("/healthz").status_code == 200
    assert "secret internals" in caplog.text  # logged on the server, with its traceback


def test_pillow_warnings_about_uploads_stay_off_the_server_log(detector):
    # EXIF whose Make tag claims 1,000 bytes past the end: "Tag data larger than file".
    entries = struct.pack("<HHII", 0x0112, 3, 1, 6) + struct.pack("<HHII", 0x010F, 2, 1000, 500)
    tiff = b"II*\x00" + struct.pack("<IH", 8, 2) + entries + struct.pack("<I", 0)
    jpeg = save(Image.fromarray(random_image(4, (16, 16))), "JPEG", exif=b"Exif\x00\x00" + tiff)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with client_for(detector) as client:
            response = client.post("/v1/predict?evidence=true", files=files(("exif.jpg", jpeg)))
    assert response.status_code == 200
    assert not [w for w in caught if "PIL" in w.filename], [str(w.message) for w in caught]


# === A real server on loopback, abused while it is watched ===

SERVER = """
import sys, uvicorn
from fakelens.config import ServeConfig
from fakelens.inference.detector import load_detector
from fakelens.serving.app import create_app
config = ServeConfig(request_timeout_s={timeout})
detector = load_detector("seed", backend="onnx")
uvicorn.run(create_app(config, detector=detector), host="127.0.0.1", port={port}, log_level="warning")
"""
TIMEOUT_S = 2.0


@contextmanager
def server_process(log: Path) -> Iterator[tuple[str, psutil.Process]]:
    port = free_port()
    command = [sys.executable, "-c", SERVER.format(timeout=TIMEOUT_S, port=port)]
    with serving(command, port, log, env={**os.environ, "PYTHONUNBUFFERED": "1"}) as process:
        yield f"http://127.0.0.1:{port}", psutil.Process(process.pid)


class Watch:
    """Polls /healthz and the server's resident memory from threads until stopped."""

    def __init__(self, url: str, process: psutil.Process) -> None:
        self.url = url
        self.process = process
        self.worst_health_s = 0.0
        self.peak_rss_mb = 0.0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._health), threading.Thread(target=self._memory)]

    def __enter__(self) -> Watch:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _health(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.wait(0.05):
                started = time.monotonic()
                assert client.get(f"{self.url}/healthz").json() == {"status": "ok"}
                self.worst_health_s = max(self.worst_health_s, time.monotonic() - started)

    def _memory(self) -> None:
        while not self._stop.wait(0.01):
            self.peak_rss_mb = max(self.peak_rss_mb, rss_mb(self.process))


def rss_mb(process: psutil.Process) -> float:
    return process.memory_info().rss / 2**20


def hostile_requests() -> list[tuple[str, str, list]]:
    """(kind, route, files) of the abuse: every class of hostile file the server meets."""
    slow = refining_jpeg(2000, 490)  # within the decoder's limits: seconds each
    metadata = uploadable(every_case())
    return [
        ("16 slow JPEGs", "/v1/predict", files(*[(f"scans-{i}.jpg", slow) for i in range(16)])),
        (
            "4 canvas GIFs",
            "/v1/predict",
            files(*[(f"canvas-{i}.gif", gif(10_000, 10_000)) for i in range(4)]),
        ),
        ("huge canvases", "/v1/predict", files(*[(case.name, case.data) for case in huge_canvases()])),
        ("canvas WebP explained", "/v1/explain", files(("canvas.webp", animated_webp(9_999, 9_999)))),
        ("refused as too slow", "/v1/predict", files(*[(case.name, case.data) for case in slow_decodes()])),
        *[
            (
                "hostile metadata",
                "/v1/predict?evidence=true",
                files(*[(c.name, c.data) for c in metadata[i : i + 16]]),
            )
            for i in range(0, len(metadata), 16)
        ],
        ("markup name", "/v1/predict?evidence=true", files((MARKUP_NAME, GOOD))),
    ]


@pytest.mark.slow
def test_hostile_uploads_mixed_with_good_ones_keep_health_fast_deadlines_kept_and_memory_returned(tmp_path):
    log = tmp_path / "server.log"
    with server_process(log) as (url, process), httpx.Client(timeout=30) as client:

        def send(kind: str, route: str, parts: list) -> tuple[str, int, float, dict]:
            started = time.monotonic()
            response = client.post(f"{url}{route}", files=parts)
            return kind, response.status_code, time.monotonic() - started, response.json()

        good = ("good", "/v1/predict", files(("good.jpg", GOOD)))
        send("good explained", "/v1/explain", good[2])  # loads the drawing code
        for _ in range(20):
            send(*good)
        baseline = rss_mb(process)
        hostile = hostile_requests()
        goods = []
        with Watch(url, process) as watch, ThreadPoolExecutor(3) as pool:
            sent = [pool.submit(send, *case) for _ in range(3) for case in hostile]
            while not all(future.done() for future in sent):
                goods.append(send(*good))
                time.sleep(0.1)
            answers = [future.result() for future in sent]
        settled = time.monotonic()
        while rss_mb(process) > 1.15 * baseline and time.monotonic() < settled + 30:
            time.sleep(0.5)  # abandoned decodes finish; the last one trims the heap
        settled = time.monotonic() - settled
        for _ in range(20):
            assert send(*good)[1] == 200
        after = rss_mb(process)
    worst = max(elapsed for _, _, elapsed, _ in answers)
    worst_by_kind = {kind: round(max(a[2] for a in answers if a[0] == kind), 2) for kind, *_ in answers}
    good_answers = [
        (status, body["results"][0]["error"] if "results" in body else body["detail"])
        for _, status, _, body in goods
    ]
    print(
        f"\nworst /healthz {watch.worst_health_s:.3f} s; worst request {worst:.2f} s, worst good one "
        f"{max(elapsed for _, _, elapsed, _ in goods):.2f} s (timeout {TIMEOUT_S} s); RSS baseline "
        f"{baseline:.0f} MB, peak {watch.peak_rss_mb:.0f} MB, after {after:.0f} MB ({settled:.1f} s, then "
        f"20 requests later)\nworst by kind: {worst_by_kind}\n"
        f"hostile: {sorted({(kind, status) for kind, status, _, _ in answers})}\n"
        f"good: {sorted(set(good_answers))} of {len(goods)}"
    )
    assert watch.worst_health_s <= 1.0
    assert worst <= 2 * TIMEOUT_S + 1  # receiving a body has a timeout of its own
    assert all(status in (200, 422, 504) for _, status, _, _ in answers), answers
    assert good_answers == [(200, None)] * len(goods)
    assert after <= 1.15 * baseline
    text = log.read_text()
    assert "Traceback" not in text and "Warning" not in text, text[-2000:]


# === The page: names, errors and evidence are text, never markup ===

STATIC = Path(create_app.__code__.co_filename).parent / "static"


def test_the_page_script_never_parses_strings_as_html():
    script = (STATIC / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function("):
        assert sink not in script, f"app.js uses {sink}: build elements and set textContent instead"


@pytest.mark.browser
def test_markup_in_file_names_and_evidence_is_shown_as_text(tmp_path):
    from browser import browser_page
    from PIL import PngImagePlugin

    expect = pytest.importorskip("playwright.sync_api").expect
    image = tmp_path / MARKUP_NAME
    image.write_bytes(GOOD)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "<img src=x onerror=alert(2)>\nSteps: 20, Sampler: Euler a")
    generated = tmp_path / "<svg onload=alert(3)>.png"
    Image.fromarray(GOOD_PIXELS).save(generated, pnginfo=info)
    notes = tmp_path / "<b onmouseover=alert(4)>notes.jpg"
    notes.write_text("not an image")
    with server_process(tmp_path / "server.log") as (url, _), browser_page() as page:
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(url)
        page.set_input_files("#file-input", [str(image), str(generated), str(notes)])
        expect(page.locator(".result[data-label]")).to_have_count(3, timeout=30_000)
        names = page.locator(".result .name").all_inner_texts()
        assert sorted(names) == sorted([image.name, generated.name, notes.name])
        shown = page.locator(".result", has_text=generated.name)
        shown.locator(".evidence summary").click()
        assert "<img src=x onerror=alert(2)>" in shown.locator(".evidence").inner_text()
        error = page.locator(".result", has_text=notes.name).locator(".error").inner_text()
        assert error == f"{notes.name}: not a recognised image format"
        page.locator(".result", has_text=image.name).locator("button.why").click()
        expect(page.locator(".result", has_text=image.name).locator(".heatmap")).to_be_visible(timeout=30_000)
        # No element came from a name or a value: only the page's own thumbnails and heatmap.
        assert page.locator("#results img[src='x'], #results svg, #results b").count() == 0
        assert dialogs == []
