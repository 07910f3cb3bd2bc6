"""Bounds on decoding (issue 19, classes 10 and 11): files that would take minutes or gigabytes
to decode are refused before any decoder runs, by name and with the reason; huge canvases that
fit the memory budget decode within it and hand the memory back; legitimately large images decode
exactly as before. The hostile files come from tests/hostile_decode.py.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import hostile_metadata
import numpy as np
import pytest
from conftest import encode, random_image
from hostile_decode import (
    TOO_SLOW,
    bigtiff,
    bmp_rle,
    gif,
    huge_canvases,
    large_photos,
    progressive_jpeg,
    save,
    segments,
    slow_decodes,
    tiff_exif_rationals,
    tiff_strips,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from fakelens import heap
from fakelens.config import MAX_DECODE_BYTES
from fakelens.data import decode
from fakelens.data.bounds import (
    LARGE_DECODE_BYTES,
    MAX_JPEG_SCAN_PIXELS,
    MemoryBudget,
    check_structure,
    decode_bytes,
)
from fakelens.data.decode import crop_to, decode_image, load_image, open_image, to_rgb_array
from fakelens.errors import ImageDecodeError

TESTS = Path(__file__).parent
SLOW = slow_decodes()
CANVASES = huge_canvases()
REFUSED = [c for c in (*SLOW, *CANVASES) if c.outcome is not None]
JUDGED = [c for c in CANVASES if c.outcome is None]
linux_only = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="measures peak RSS via /proc"
)


@pytest.mark.parametrize("case", REFUSED, ids=[c.name for c in REFUSED])
def test_a_costly_file_is_refused_before_decoding_with_its_name_and_reason(case):
    began = time.perf_counter()
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(case.data, name=case.name)
    assert caught.value.source == case.name and re.search(case.outcome, caught.value.reason), caught.value
    if case in SLOW:  # the metadata and dataset readers open files the same way
        with pytest.raises(ImageDecodeError, match=case.outcome), open_image(case.data, case.name):
            pass
    assert time.perf_counter() - began < 2


CHILD = """
import json, sys, time
sys.path.insert(0, {tests!r})
import hostile_decode
from fakelens.data.decode import decode_image, load_image
from fakelens.errors import ImageDecodeError

cases = {{c.name: c.data for c in (*hostile_decode.slow_decodes(), *hostile_decode.huge_canvases())}}

def kib(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field))

for name in sys.argv[1:]:
    data = cases[name]
    open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) starts again from here
    before, began = kib("VmRSS:"), time.perf_counter()
    try:
        {call}
        error = None
    except ImageDecodeError as exc:
        error = exc.reason
    row = {{"name": name, "seconds": time.perf_counter() - began, "error": error}}
    print(json.dumps({{**row, "peak_mib": (kib("VmHWM:") - before) / 1024}}))
"""


def measure(names: list[str], call: str) -> dict[str, dict]:
    """`call` on each named case in a fresh process: seconds, peak memory above the process's
    own (MiB) and the error, per case."""
    code = CHILD.format(tests=str(TESTS), call=call)
    finished = subprocess.run(
        [sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=600
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return {row["name"]: row for row in map(json.loads, finished.stdout.splitlines())}


@linux_only
def test_refused_files_take_neither_time_nor_memory():
    rows = measure([c.name for c in REFUSED], "decode_image(data, name=name)")
    for case in REFUSED:
        row = rows[case.name]
        assert re.search(case.outcome, row["error"]), row
        assert row["seconds"] < 1 and row["peak_mib"] < 32, row


@linux_only
def test_huge_canvases_within_the_budget_decode_within_their_estimate():
    """Each 100-megapixel canvas is judged in under 10 s, its peak memory under the estimate that
    the budget holds for it (the estimate is an upper bound), and that under the budget."""
    rows = measure([c.name for c in JUDGED], "load_image(data, (224, 224), name=name, fit='crop')")
    for case in JUDGED:
        row = rows[case.name]
        with open_image(case.data, case.name) as image:
            estimate = decode_bytes(image, check_structure(case.data, case.name), len(case.data), fitted=True)
        assert row["error"] is None and row["seconds"] < 10, row
        assert row["peak_mib"] * 2**20 <= estimate <= MAX_DECODE_BYTES, (row, estimate / 2**20)


@linux_only
@pytest.mark.skipif(not heap.CAN_RELEASE, reason="libc without malloc_trim")
def test_memory_is_handed_back_after_large_decodes_on_many_threads():
    """Without the trim, glibc kept about 620 MB after these four decodes."""
    names = ("canvas.gif", "grey16.png", "rgba.png", "palette-transparent.png")
    code = f"""
import sys
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, {str(TESTS)!r})
import hostile_decode
from fakelens.data.decode import load_image
datas = [c.data for c in hostile_decode.huge_canvases() if c.name in {names!r}]
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096
before = rss()
with ThreadPoolExecutor(4) as pool:
    list(pool.map(lambda data: load_image(data, (224, 224)), datas))
print((rss() - before) / 2**20)
"""
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert float(finished.stdout) < 100


def test_the_scan_limit_follows_the_pixel_count():
    """At 4096 x 4096 the limit is 149 scans: the worst file accepted decodes, one scan more is
    refused before decoding."""
    limit = MAX_JPEG_SCAN_PIXELS // 4096**2
    began = time.perf_counter()
    assert load_image(progressive_jpeg(4096, limit), (224, 224)).shape == (224, 224, 3)
    assert time.perf_counter() - began < 10
    with pytest.raises(ImageDecodeError, match=f"over {limit} scans at 4096x4096.*{TOO_SLOW}"):
        decode_image(progressive_jpeg(4096, limit + 1))


def with_segment(jpeg: bytes, segment: bytes) -> bytes:
    return jpeg[:2] + segment + jpeg[2:]


def test_the_jpeg_walk_reads_real_structures():
    """Segments are skipped by their lengths (an embedded JPEG's scans do not count), fill bytes
    and restart markers are no markers, and a progressive file costs its coefficient buffer."""
    image = Image.fromarray(random_image(3, (48, 80)))
    many_scans = progressive_jpeg(64, 2000)
    embedded = with_segment(
        save(image, "JPEG"), b"\xff\xe2" + (len(many_scans) + 2).to_bytes(2, "big") + many_scans
    )
    restarts = save(image, "JPEG", restart_marker_rows=1)
    assert restarts.count(b"\xff\xd0") >= 1
    filled = save(image, "JPEG").replace(b"\xff\xdb", b"\xff\xff\xff\xdb")
    for data in (embedded, restarts, filled):
        assert check_structure(data, "x") == 0
        assert np.array_equal(decode_image(data), np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    progressive = save(image, "JPEG", progressive=True)  # 4:2:0: 6 x 10 luma blocks, 2 x 3 x 5 chroma
    assert len([s for s in segments(progressive) if s[0] == 0xDA]) == 10
    assert check_structure(progressive, "x") == (60 + 2 * 15) * 128


def test_a_bigtiff_offset_past_the_end_of_any_file_is_a_decode_error():
    """Pillow raised OverflowError (seeking to 2**63 + 5), which escaped as a traceback."""
    assert decode_image(bigtiff()).shape == (1, 1, 3)
    with pytest.raises(ImageDecodeError, match="x.tif: corrupt or truncated image data"):
        decode_image(bigtiff(strip_offset=2**63 + 5), name="x.tif")


PHOTO = Image.fromarray(random_image(6, (20, 30)))
#: One file of each structure the walks read, to mutate.
STRUCTURES = {
    "progressive.jpg": save(PHOTO, "JPEG", progressive=True),
    "restarts.jpg": save(PHOTO, "JPEG", restart_marker_rows=1),
    "lzw.tif": save(PHOTO, "TIFF", compression="tiff_lzw"),
    "strips.tif": tiff_strips(12),
    "rationals.tif": tiff_exif_rationals(6),
    "big.tif": bigtiff(filler=3),
    "rle4.bmp": bmp_rle(8, 2, True, b"\x08\x12\x00\x00" * 2),
    "comment.gif": gif(4, 4, b"\x21\xfe\x03abc\x00"),
    "chunks.png": save(PHOTO, "PNG"),
}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(STRUCTURES)), st.integers(0, 2**16), st.integers(0, 255), st.booleans())
def test_mutated_structures_are_judged_or_refused_never_raised(name, position, value, cut):
    data = bytearray(STRUCTURES[name])
    data[position % len(data)] = value
    try:
        out = decode_image(bytes(data[: position % len(data) + 1] if cut else data), name=name)
    except ImageDecodeError as caught:
        assert caught.source == name
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


def reference(image: Image.Image) -> np.ndarray:
    """What decoding gave before the tiles: Pillow's conversions on the whole image."""
    if image.mode in ("I;16", "I;16B", "I"):
        grey = np.clip(np.rint(np.asarray(image, dtype=np.float64) / 257), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "F":
        grey = np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in image.info:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA"))
    return np.asarray(image.convert("RGB"))


def modes() -> dict[str, Image.Image]:
    """Every mode decoding meets, with every (value, alpha) pair in the RGBA image."""
    value, alpha = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8))
    rgba = Image.fromarray(np.stack([value, 255 - value, value // 2, alpha], axis=-1), "RGBA")
    palette = rgba.convert("RGB").convert("P")
    palette.info["transparency"] = bytes(range(256))
    grey16 = Image.fromarray((np.arange(65536, dtype=np.uint32).reshape(256, 256)).astype(np.uint16))
    converted = {mode: rgba.convert(mode) for mode in ("RGB", "L", "LA", "1", "CMYK", "RGBa", "YCbCr")}
    wide = Image.fromarray(np.array([[-70000, -129, 0, 128, 129, 65535, 2**31 - 1]], dtype=np.int32), "I")
    floats = Image.fromarray(np.array([[-3.5, 0.5, 1.5, 254.5, 255.5, 1e9]], dtype=np.float32), "F")
    return {
        **converted,
        "RGBA": rgba,
        "PA": palette.convert("PA"),
        "P-transparent": palette,
        "I;16": grey16,
        "I;16B": grey16.convert("I;16B"),
        "I": wide,
        "F": floats,
    }


TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@pytest.mark.parametrize("mode", list(modes()))
def test_every_mode_converts_tile_by_tile_exactly_as_pillow_does_on_the_whole(mode, monkeypatch):
    image = modes()[mode]
    monkeypatch.setattr(decode, "_TILE_BYTES", 4 * 37)  # tiles of 37 x 1 and 6 x 1 pixels
    assert np.array_equal(to_rgb_array(image), reference(image))
    for orientation, method in TRANSPOSES.items():
        assert np.array_equal(to_rgb_array(image, orientation), reference(image.transpose(method))), (
            orientation
        )


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_applies_it(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = save(Image.fromarray(random_image(4, (12, 20))), "PNG", exif=exif)
    with Image.open(io.BytesIO(data)) as image:
        expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    assert np.array_equal(decode_image(data), expected)


def test_a_damaged_exif_block_warns_nothing_and_the_image_is_judged():
    """Pillow warns "Corrupt EXIF data" (an IFD claims 50 entries and holds one); the warning went
    to stderr and, as an error, cost the image."""
    ifd = (50).to_bytes(2, "little") + bytes.fromhex("1201 0300 01000000 06000000")  # orientation 6
    data = save(Image.fromarray(random_image(5, (4, 8))), "JPEG", exif=b"Exif\0\0II*\0\x08\0\0\0" + ifd)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = decode_image(data)
    assert not caught and out.shape == (8, 4, 3)


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    return large_photos()


def test_large_photos_decode_exactly_as_before(photos):
    for name, data in photos.items():
        with Image.open(io.BytesIO(data)) as image:
            expected = reference(image)
        assert np.array_equal(decode_image(data, name=name), expected), name
        if not name.endswith(".jpg"):  # JPEGs are drafted at a reduced scale for the fit
            assert np.array_equal(load_image(data, (224, 224), fit="crop"), crop_to(expected, (224, 224))), (
                name
            )


def test_decodes_share_the_budget_and_one_over_it_is_refused_by_name():
    unit = LARGE_DECODE_BYTES
    budget = MemoryBudget(3 * unit)
    with pytest.raises(
        ImageDecodeError, match=r"x.png: decoding this 9x9 PNG image .* over the 96 MiB memory budget"
    ):
        budget.reserve(3 * unit + 1, "x.png", 9, 9, "PNG")
    entered = threading.Event()

    def second() -> None:
        with budget.reserve(2 * unit, "b", 1, 1, "PNG"):
            entered.set()

    with budget.reserve(2 * unit, "a", 1, 1, "PNG"):
        waiting = threading.Thread(target=second)
        waiting.start()
        with budget.reserve(unit // 2, "small", 1, 1, "PNG"):  # small ones never wait
            pass
        assert not entered.wait(0.3)  # 2 + 2 units do not fit in 3
    assert entered.wait(5)
    waiting.join()


def run_cli(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """The CLI in a fresh process: its result, and its peak memory in MiB (its own VmHWM:
    ru_maxrss would count the test process it was forked from)."""
    code = (
        "import re, sys\nfrom fakelens.cli import app\ntry:\n    app()\nfinally:\n"
        "    status = open('/proc/self/status').read()\n"
        "    print(re.search(r'VmHWM:\\s+(\\d+)', status)[1], file=sys.stderr)"
    )
    finished = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600
    )
    return finished, int(finished.stderr.split()[-1]) / 1024


def test_cli_predict_and_scan_name_every_costly_file_and_score_the_good_ones(tmp_path):
    """One good photo, one judged 100-megapixel canvas, and every refused file: exit 1, a score
    for the first two and the reason for each other one, in bounded time and memory."""
    folder = tmp_path / "in"
    folder.mkdir()
    cases = {c.name: c for c in (*REFUSED, next(c for c in JUDGED if c.name == "canvas.gif"))}
    for case in cases.values():
        (folder / case.name).write_bytes(case.data)
    (folder / "good.jpg").write_bytes(encode(random_image(1, (300, 400))))
    model = ["--model", "seed", "--backend", "onnx"]
    began = time.perf_counter()
    predicted, peak_mib = run_cli("predict", *sorted(map(str, folder.iterdir())), *model, "--json")
    assert time.perf_counter() - began < 60 and peak_mib < 1500
    out = tmp_path / "r.jsonl"
    scanned, _ = run_cli("scan", str(folder), *model, "--out", str(out), "-q")
    for finished, records in (
        (predicted, predicted.stdout.splitlines()),
        (scanned, out.read_text().splitlines()),
    ):
        assert finished.returncode == 1, finished.stderr[-2000:]
        rows = {os.path.basename(r["path"]): r for r in map(json.loads, records)}
        assert rows.keys() == {*cases, "good.jpg"}
        for name, row in rows.items():
            outcome = cases[name].outcome if name in cases else None
            if outcome is None:
                assert row["error"] is None and row["label"] in ("ai", "real"), row
            else:
                assert row["label"] is None and re.search(outcome, row["error"]), row


def test_pixels_behind_text_chunks_pillow_refuses_are_judged_as_the_plain_image():
    """A text chunk or colour profile that Pillow cannot inflate (over its limit, damaged, unknown
    method) costs only the evidence, before or after the pixel data; an eXIf after the pixels
    still turns the image."""
    plain = decode_image(hostile_metadata.png())
    too_many_chunks = "empty-chunks-1m-after-idat.png"  # refused by the structure check
    for case in hostile_metadata.png_text_cases():
        if case.name != too_many_chunks:
            np.testing.assert_array_equal(decode_image(case.data, name=case.name), plain, err_msg=case.name)
    profile_bomb = hostile_metadata.chunk(b"iCCP", b"icc\0\0" + hostile_metadata.deflated_zeros(64 << 20))
    np.testing.assert_array_equal(decode_image(hostile_metadata.png(before=profile_bomb)), plain)
    orientation = hostile_metadata.exif_block([(0x0112, 3, 1, struct.pack("<HH", 6, 0))])
    turned = hostile_metadata.png(after=hostile_metadata.chunk(b"eXIf", orientation))
    np.testing.assert_array_equal(decode_image(turned), np.rot90(plain, -1))
