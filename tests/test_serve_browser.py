"""The web page as a person uses it: a real server on 127.0.0.1, headless Chromium, real images."""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
from browser import browser_page
from conftest import random_image, session_cache
from PIL import Image, PngImagePlugin
from servers import free_port, serving

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser

#: A REAL and a FAKE image from the CIFAKE test split.
SAMPLES = ("test/REAL/0000 (10).jpg", "test/FAKE/645.jpg")


#: The server's upload limit in MB: small, so that one of the images is over it.
UPLOAD_LIMIT_MB = 0.01
#: What the header says each model was trained on.
TRAINED_ON = {
    "seed": "trained on CIFAKE (32x32-pixel CIFAR-10 photos and Stable Diffusion images)",
    "clipprobe": "trained on wild and sd-unsplash",
}


@pytest.fixture(scope="module", params=["seed", "clipprobe"])
def server(request, tmp_path_factory):
    """`fakelens serve` with a shipped model, as a user would start it: the small Keras CNN, and
    the real-world model (a CLIP encoder, explained by occlusion)."""
    if request.param == "clipprobe":
        request.getfixturevalue("clip_encoder")  # fetched into the session's cache
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    command = [
        str(Path(sys.executable).parent / "fakelens"),
        "serve",
        "--port",
        str(port),
        "--model",
        request.param,
        "--max-upload-mb",
        str(UPLOAD_LIMIT_MB),
    ]
    env = {**os.environ, "FAKELENS_CACHE": str(session_cache(tmp_path_factory))}
    with serving(command, port, log, env=env, ready_s=120):
        yield f"http://127.0.0.1:{port}", request.param


@pytest.fixture
def images(cifake, tmp_path) -> list[Path]:
    """Two CIFAKE images, a text file named .jpg, a PNG declaring Stable Diffusion, and a PNG
    over the server's upload limit, in the order a user picks them."""
    with zipfile.ZipFile(cifake / "cifake.zip") as archive:
        paths = []
        for member in SAMPLES:
            path = tmp_path / member.replace("/", "_").replace(" ", "_")
            path.write_bytes(archive.read(member))
            paths.append(path)
    notes = tmp_path / "notes.jpg"
    notes.write_text("a text file with an image's name")
    generated = tmp_path / "generated.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a lighthouse at dusk\nSteps: 30, Sampler: DPM++ 2M, Model: sd_xl_base_1.0")
    Image.fromarray(random_image(3, (40, 40))).save(generated, pnginfo=info)
    large = tmp_path / "large.png"
    Image.fromarray(random_image(4, (96, 96))).save(large)
    assert large.stat().st_size > UPLOAD_LIMIT_MB * 2**20 > max(p.stat().st_size for p in paths)
    return [paths[0], notes, large, paths[1], generated]


def test_a_user_drops_images_and_reads_each_verdict(server, images, tmp_path):
    server, model = server
    expected = httpx.post(
        f"{server}/v1/predict", files=[("files", (p.name, p.read_bytes())) for p in images], timeout=30
    ).json()["results"]
    with browser_page() as page:
        missing = []
        page.on("response", lambda response: missing.append(response.url) if response.status == 404 else None)
        explains = []
        page.on("request", lambda request: explains.append(request) if "/v1/explain" in request.url else None)
        page.goto(server)
        page.wait_for_selector(f"#model-info:has-text('Model {model}, {TRAINED_ON[model]}.')")
        assert "accurate on" in page.inner_text("#model-info")
        assert page.inner_text("#model-weak").startswith("Weak on: ")
        assert not page.is_visible("#key-form")  # no API key set on this server
        icon = page.get_attribute("link[rel=icon]", "href")
        assert page.request.get(f"{server}{icon}").headers["content-type"].startswith("image/svg+xml")
        page.set_input_files("#file-input", [str(p) for p in images])
        expect(page.locator(".result[data-label]")).to_have_count(len(images), timeout=30_000)
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        assert page.locator(".result .name").all_inner_texts() == [p.name for p in images]  # as picked
        shown = {
            item.query_selector(".name").inner_text(): item for item in page.query_selector_all(".result")
        }
        for record in expected:
            item = shown[record["path"]]
            if record["error"]:
                assert item.get_attribute("data-label") == "error"
                assert item.query_selector(".error").inner_text() == f"{record['path']}: {record['error']}"
                continue
            verdict = "Likely AI-generated" if record["label"] == "ai" else "Likely a real photo"
            assert verdict in item.query_selector(".verdict").inner_text()
            bar = item.query_selector("[role=meter]")
            assert bar.get_attribute("aria-valuenow") == str(round(record["ai_probability"] * 100))
            assert item.query_selector("img").get_attribute("alt") == f"Thumbnail of {record['path']}"
        assert "not a recognised image format" in shown["notes.jpg"].inner_text()
        assert "over the 0.01 MB upload limit" in shown["large.png"].query_selector(".error").inner_text()
        assert page.inner_text("#status") == "Done: 3 images judged, 2 could not be judged."
        generated = shown["generated.png"]
        assert generated.query_selector(".declared").inner_text() == (
            "Declared in the file: AI-generated — PNG text (Stable Diffusion WebUI parameters)"
        )
        assert not shown[images[0].name].query_selector(".declared").is_visible()  # a plain JPEG
        generated.query_selector(".evidence summary").click()
        assert "png_text parameters" in generated.query_selector(".evidence").inner_text()
        assert "points to AI" in generated.query_selector(".evidence").inner_text()
        fake = page.locator(f".result:has-text('{images[3].name}')")
        fake.locator("button.why").click()
        expect(fake.locator(".heatmap")).to_be_visible(timeout=30_000)
        assert fake.locator(".heatmap img").get_attribute("src").startswith("data:image/png;base64,")
        assert fake.locator(".heatmap img").evaluate("image => image.naturalWidth") >= 400
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        fake.locator("button.why", has_text="Hide heatmap").click()
        expect(fake.locator(".heatmap")).to_be_hidden()
        fake.locator("button.why", has_text="Show heatmap").click()
        expect(fake.locator(".heatmap")).to_be_visible()
        assert len(explains) == 1  # fetched once, then only hidden and shown
        page.click("#clear")
        expect(page.locator(".result")).to_have_count(0)
        assert page.inner_text("#status") == "" and not page.is_visible("#clear")
        page.set_input_files("#file-input", [str(p) for p in (images[1], images[2])])
        expect(page.locator(".result[data-label=error]")).to_have_count(2, timeout=30_000)
        assert page.inner_text("#status") == "Done: 0 images judged, 2 could not be judged."
        assert missing == []  # the icon too
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_the_page_fits_a_phone_screen(server, images, tmp_path):
    url, _ = server
    with browser_page(width=390, height=844) as page:
        page.goto(url)
        page.set_input_files("#file-input", [str(images[0])])
        page.wait_for_selector(".result[data-label]")
        page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
