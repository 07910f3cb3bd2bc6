"""Hostile metadata (tests/hostile_metadata.py) through `read_evidence`, the CLI and the HTTP API.

Issue 19, classes 1 and 12: whatever a file's EXIF, PNG text, XMP or C2PA holds, reading its
evidence returns quickly with a short list (or an `ImageDecodeError` naming the file), and a
batch that holds it scores every good image beside it.
"""

from __future__ import annotations

import csv
import io
import json
import struct
import subprocess
import sys
import time
import tracemalloc

import pytest
from conftest import encode, random_image
from fastapi.testclient import TestClient
from hostile_metadata import (
    Case,
    every_case,
    exif_block,
    exif_cases,
    ifd,
    jpeg_with_exif,
    jpeg_with_xmp,
    xmp_packet,
)
from PIL import Image, PngImagePlugin
from typer.testing import CliRunner

from fakelens.cli import app
from fakelens.config import MAX_EVIDENCE_FINDINGS, MAX_EVIDENCE_VALUE_CHARS, ServeConfig
from fakelens.errors import ImageDecodeError
from fakelens.evidence import metadata
from fakelens.evidence.declared import declaration
from fakelens.evidence.metadata import evidence_dicts, read_evidence
from fakelens.inference.detector import load_detector
from fakelens.serving.app import create_app

CASES = every_case()
BY_NAME = {case.name: case for case in CASES}
#: One file read alone takes under a second here; the margin is for a loaded machine.
MAX_SECONDS = 3.0
#: The evidence of one file as JSON: 50 findings of 400 characters and their keys fit.
MAX_JSON_CHARS = 64 * 1024
#: A few of each kind, small enough for an upload, for the CLI and HTTP tests.
MIXED = (
    "ztxt-2mib-after-idat.png",
    "ztxt-bomb-512mib-after-idat.png",
    "itxt-bomb-512mib-xmp-after-idat.png",
    "prompt-nested-200k-deep.png",
    "exif-ifd0-loops-to-itself.jpg",
    "exif-tiff-count-4g.tif",
    "xmp-200k-findings.tif",
    "xmp-billion-laughs.jpg",
    "xmp-creator-tool-spaces.png",
    "c2pa-garbage.jpg",
    "c2pa-nested-2000-deep.jpg",
)
GOOD = 4
IPTC_AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
runner = CliRunner()


def check_bounded(found: list[dict]) -> None:
    """A short list of well-formed findings, ending with a truncation notice when cut."""
    assert len(found) <= MAX_EVIDENCE_FINDINGS + 1
    assert len(json.dumps(found, ensure_ascii=False)) <= MAX_JSON_CHARS
    for item in found:
        assert set(item) == {"kind", "key", "value", "points_to", "strength"}
        assert len(item["value"]) <= MAX_EVIDENCE_VALUE_CHARS and item["points_to"] in (
            "ai",
            "real",
            "unknown",
        )
    if len(found) > MAX_EVIDENCE_FINDINGS:
        assert found[-1]["key"] == "truncated"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_case_is_read_quickly_into_a_short_list_or_refused_by_name(case):
    start = time.perf_counter()
    try:
        found = [item.to_dict() for item in read_evidence(case.data, name=case.name)]
    except ImageDecodeError as caught:
        assert caught.source == case.name and caught.reason
        found = []
    assert time.perf_counter() - start < MAX_SECONDS
    check_bounded(found)
    declaration(found)


def test_the_issues_ztxt_after_the_pixels_is_read_not_raised():
    """Pillow raised AssertionError reading a zTXt over 1 MB after IDAT; its key is no evidence."""
    assert read_evidence(BY_NAME["ztxt-2mib-after-idat.png"].data) == []


@pytest.mark.parametrize("name", ["xmp-200k-findings.tif", "xmp-200k-findings.png", "xmp-many-segments.jpg"])
def test_more_findings_than_the_cap_end_with_a_truncation_notice(name):
    found = read_evidence(BY_NAME[name].data)
    assert len(found) == MAX_EVIDENCE_FINDINGS + 1
    assert {item.key for item in found[:-1]} <= {"DigitalSourceType", "truncated"}  # PNG: the text cut too
    assert (found[-1].kind, found[-1].key, found[-1].points_to) == ("xmp", "truncated", "unknown")
    assert (
        found[-1].value
        == f"evidence truncated: more than {MAX_EVIDENCE_FINDINGS} findings; the rest not read"
    )


def test_repeated_findings_are_listed_once():
    packet = xmp_packet(f'<rdf:Description Iptc4xmpExt:DigitalSourceType="{IPTC_AI}"/>' * 500)
    [item] = read_evidence(jpeg_with_xmp(packet))
    assert (item.key, item.points_to, item.strength) == ("DigitalSourceType", "ai", "strong")


@pytest.mark.parametrize(
    "name, cut",
    [
        ("ztxt-bomb-512mib-after-idat.png", "the 'parameters' text"),
        ("itxt-bomb-512mib-xmp-after-idat.png", "the 'XML:com.adobe.xmp' text"),
        ("text-32mib-parameters-after-idat.png", "the 'parameters' text"),
    ],
)
def test_text_bombs_are_never_inflated_whole_and_the_cut_is_said(name, cut):
    tracemalloc.start()
    try:
        found = read_evidence(BY_NAME[name].data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024  # the texts inflate to 32 or 512 MiB
    assert found[-1].key == "truncated" and found[-1].value.startswith(f"evidence truncated: {cut} is over")


def test_exif_values_of_tens_of_megabytes_are_read_from_their_start():
    [item] = read_evidence(BY_NAME["exif-48mib-description.tif"].data)
    assert (
        item.key == "ImageDescription (generator parameters)" and len(item.value) == MAX_EVIDENCE_VALUE_CHARS
    )


def camera_jpeg_with_xmp() -> bytes:
    """A JPEG with EXIF (a camera make) and an XMP packet declaring AI."""
    exif = Image.Exif()
    exif[271] = "Canon"
    packet = xmp_packet(f'<rdf:Description Iptc4xmpExt:DigitalSourceType="{IPTC_AI}"/>')
    return encode(random_image(6, (16, 16)), "JPEG", exif=exif, xmp=packet)


@pytest.mark.parametrize(
    "raised, reason",
    [
        (AssertionError(), "AssertionError"),
        (struct.error("unpack requires a buffer of 4 bytes"), "error: unpack requires a buffer of 4 bytes"),
        (RecursionError("maximum recursion depth exceeded"), "nested too deeply"),
        (MemoryError(), "too large to hold in memory"),
    ],
)
def test_a_reader_that_raises_becomes_a_finding_and_the_others_still_count(monkeypatch, raised, reason):
    def broken(_: bytes) -> None:
        raise raised

    monkeypatch.setattr(metadata, "_tiff_fields", broken)
    found = {(item.kind, item.key): item for item in read_evidence(camera_jpeg_with_xmp())}
    assert found[("exif", "unreadable")].value == f"damaged metadata skipped ({reason})"
    assert found[("xmp", "DigitalSourceType")].points_to == "ai"


def test_c2pa_and_header_parsers_that_raise_cost_only_their_own_part(monkeypatch):
    def broken(*_: object) -> None:
        raise AssertionError("c2pa")

    monkeypatch.setattr(metadata, "c2pa_evidence", broken)
    found = [(item.kind, item.key) for item in read_evidence(camera_jpeg_with_xmp())]
    assert found == [("exif", "Make"), ("xmp", "DigitalSourceType"), ("c2pa", "unreadable")]
    monkeypatch.setattr(metadata, "open_image", broken)
    with pytest.raises(
        ImageDecodeError, match=r"^odd\.jpg: unreadable image header \(AssertionError: c2pa\)"
    ):
        read_evidence(camera_jpeg_with_xmp(), name="odd.jpg")
    assert evidence_dicts(camera_jpeg_with_xmp()) == []


def test_exif_is_read_big_endian_through_the_exif_ifd_and_from_bigtiff():
    """The EXIF reader that replaced Pillow's, on what cameras and large TIFFs write."""
    lens = ifd([(42036, 2, 8, b"24-70mm\0"), (36867, 2, 20, b"2024:01:01 10:00:00\0")], 64, order=">")
    block = exif_block([(271, 2, 6, b"NIKON\0"), (0x8769, 4, 1, struct.pack(">I", 64))], order=">")
    found = read_evidence(jpeg_with_exif(block.ljust(64, b"\0") + lens))
    assert [(e.key, e.value) for e in found] == [
        ("Make", "NIKON"),
        ("LensModel", "24-70mm"),
        ("DateTimeOriginal", "2024:01:01 10:00:00"),
    ]
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(
        buffer, "TIFF", big_tiff=True, tiffinfo={271: "Nikon", 305: "Midjourney v6"}
    )
    found = read_evidence(buffer.getvalue())
    assert [(e.key, e.points_to) for e in found] == [("Make", "real"), ("Software", "ai")]


def test_exif_in_png_text_and_after_the_pixels_is_still_read():
    """What Pillow read by decoding the pixels is now read from the chunks."""
    exif = Image.Exif()
    exif[271] = "Canon"
    hex_text = "\nexif\n      20\n" + exif.tobytes().hex()
    data = encode(random_image(7, (8, 8)), "PNG", pnginfo=png_info("Raw profile type exif", hex_text))
    assert [(e.key, e.value) for e in read_evidence(data)] == [("Make", "Canon")]
    [item] = read_evidence(BY_NAME["exif-png-chunk-after-idat.png"].data)
    assert (item.key, item.value) == ("Make", "Cam")


def png_info(key: str, value: str) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    return info


def test_a_declaration_ignores_findings_that_are_not_findings():
    """Evidence read back from a result file may be any JSON."""
    ai = {
        "kind": "xmp",
        "key": "DigitalSourceType",
        "value": IPTC_AI,
        "points_to": "ai",
        "strength": "strong",
    }
    expected = "ai: IPTC digital source type trainedAlgorithmicMedia (XMP)"
    assert declaration([5, [1], "text", None, {"a": 1}, ai]) == expected
    assert declaration([5, {"kind": 3, "key": None}]) is None


def test_pillow_warnings_about_damaged_exif_stay_off_stderr(tmp_path):
    paths = []
    for case in exif_cases():
        paths.append(tmp_path / case.name)
        paths[-1].write_bytes(case.data)
    paths.append(tmp_path / "corrupt-exif.jpg")
    paths[-1].write_bytes(jpeg_with_exif(b"II*\0" + struct.pack("<I", 8) + b"\xff\xff" + bytes(30)))
    script = (
        "import sys\nfrom concurrent.futures import ThreadPoolExecutor\n"
        "from fakelens.evidence.metadata import evidence_dicts\n"
        "with ThreadPoolExecutor(4) as pool:\n    list(pool.map(evidence_dicts, sys.argv[1:] * 4))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, *map(str, paths)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""


def mixed_folder(root) -> tuple[list[str], list[Case]]:
    """Good images and the `MIXED` hostile ones in `root`: the good names, the hostile cases."""
    root.mkdir()
    good = []
    for i in range(GOOD):
        (root / f"good-{i}.jpg").write_bytes(encode(random_image(40 + i)))
        good.append(f"good-{i}.jpg")
    hostile = [BY_NAME[name] for name in MIXED]
    for case in hostile:
        (root / case.name).write_bytes(case.data)
    return good, hostile


def check_rows(rows: dict[str, dict], good: list[str], hostile: list[Case]) -> None:
    """Every good image scored; every hostile one scored or refused with a reason; evidence bounded."""
    assert sorted(rows) == sorted(good + [case.name for case in hostile])
    for name, row in rows.items():
        evidence = json.loads(row["evidence"]) if isinstance(row["evidence"], str) else row["evidence"]
        check_bounded(evidence)
        assert (row["label"] is None) == bool(row["error"]), name
    assert all(rows[name]["error"] is None for name in good)
    truncated = rows["xmp-200k-findings.tif"]["evidence"]
    assert "evidence truncated" in (truncated if isinstance(truncated, str) else truncated[-1]["value"])


def test_cli_predict_and_scan_with_evidence_score_every_good_file(tmp_path):
    good, hostile = mixed_folder(tmp_path / "in")
    files = [str(tmp_path / "in" / name) for name in good + [case.name for case in hostile]]
    model = ["-m", "seed", "--backend", "onnx", "--evidence"]
    result = runner.invoke(app, ["predict", *files, "--json", *model], catch_exceptions=False)
    assert "Traceback" not in result.output
    records = {
        json.loads(line)["path"].rsplit("/", 1)[-1]: json.loads(line) for line in result.stdout.splitlines()
    }
    check_rows(records, good, hostile)
    assert result.exit_code == (1 if any(r["error"] for r in records.values()) else 0)

    out = tmp_path / "r.csv"
    result = runner.invoke(
        app, ["scan", str(tmp_path / "in"), "--out", str(out), "-q", *model], catch_exceptions=False
    )
    assert "Traceback" not in result.output
    with out.open(newline="") as handle:  # csv's default field limit: every cell stays far below it
        rows = {row["path"].rsplit("/", 1)[-1]: row for row in csv.DictReader(handle)}
    for row in rows.values():  # CSV writes None as ""
        row["label"], row["error"] = row["label"] or None, row["error"] or None
    check_rows(rows, good, hostile)
    assert result.exit_code == (1 if any(row["error"] for row in rows.values()) else 0)


def test_http_predict_and_explain_answer_json_for_every_file():
    good = [(f"good-{i}.jpg", encode(random_image(50 + i))) for i in range(GOOD)]
    hostile = [BY_NAME[name] for name in MIXED]
    detector = load_detector("seed", backend="onnx")
    with TestClient(create_app(ServeConfig(), detector=detector)) as client:
        uploads = [*good, *((case.name, case.data) for case in hostile)]
        response = client.post(
            "/v1/predict",
            params={"evidence": "true"},
            files=[("files", (name, data, "application/octet-stream")) for name, data in uploads],
        )
        assert response.status_code == 200, response.text
        rows = {row["path"]: row for row in response.json()["results"]}
        check_rows(rows, [name for name, _ in good], hostile)
        for case in hostile:
            answer = client.post("/v1/explain", files=[("files", (case.name, case.data, "image/png"))])
            assert answer.status_code < 500 and answer.headers["content-type"] == "application/json"
            assert answer.json()["result"]["path"] == case.name
            check_bounded(answer.json()["result"]["evidence"])
