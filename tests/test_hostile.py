"""The hostile corpus (tests/hostile.py) through every entry point: Python API, CLI and HTTP.

Every file gets a result or an error naming it and the reason; a scan over a folder or zip that
mixes them with good images scores every good image and exits 1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from clirun import run
from conftest import encode, random_image, read_table
from hostile import Case, bombs, corpus, not_images, odd_but_valid
from servers import client_for, files

from fakelens.config import MAX_FILE_BYTES
from fakelens.data.decode import decode_image
from fakelens.errors import ImageDecodeError
from fakelens.evidence.metadata import read_evidence
from fakelens.inference.detector import load_detector

CASES = corpus()


def check(case: Case, error: str | None) -> None:
    """A record's `error` is what the case expects: None, or a reason matching its outcome."""
    if case.outcome is None:
        assert error is None, f"{case.name}: {error}"
    else:
        assert error is not None and re.search(case.outcome, error), f"{case.name}: {error}"


@pytest.fixture(scope="module", params=["seed", "auto"])
def model(request, seed_model_file) -> str:
    """A small Keras model, and the default: the CLIP probe with patchres for tiny images."""
    if request.param == "auto":
        request.getfixturevalue("clip_encoder")
        return "auto"
    return str(seed_model_file)


@pytest.fixture(scope="module")
def detector(model):
    return load_detector(model, batch_size=8)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_decode_image_judges_each_case_or_names_it_and_the_reason(case):
    try:
        out = decode_image(case.data, name=case.name)
    except ImageDecodeError as caught:
        assert caught.source == case.name and str(caught).startswith(f"{case.name}: ")
        check(case, caught.reason)
        return
    check(case, None)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and out.size >= 3


def test_read_evidence_reads_every_image_and_refuses_the_rest_by_name():
    for case in CASES:
        try:
            found = read_evidence(case.data, name=case.name)
        except ImageDecodeError as caught:  # metadata needs only the header: a cut file may pass
            assert case.outcome is not None and caught.source == case.name
            continue
        assert isinstance(found, list)
    assert all(isinstance(read_evidence(c.data, name=c.name), list) for c in odd_but_valid())


@pytest.mark.parametrize("name", ["animated.gif", "animated.webp"])
def test_animated_images_are_judged_on_their_first_frame(name):
    case = next(c for c in odd_but_valid() if c.name == name)
    assert (decode_image(case.data) > 200).all()  # frame 1 is near-white, frame 2 black


def write_corpus(folder: Path, cases: list[Case] = CASES) -> dict[str, Case]:
    folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        (folder / case.name).write_bytes(case.data)
    return {str(folder / case.name): case for case in cases}


def test_detector_predict_answers_paths_and_bytes_in_order(detector, tmp_path):
    written = write_corpus(tmp_path / "in")
    for inputs in (list(written), [case.data for case in written.values()]):
        records = detector.predict(inputs)
        assert len(records) == len(CASES)
        for record, case in zip(records, written.values()):
            check(case, record.error)
            assert (record.label is None) == (record.error is not None)


def test_cli_predict_prints_every_file_and_exits_1(model, tmp_path):
    written = write_corpus(tmp_path / "in")
    result = run("predict", *written, "--model", model, "--json")
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["path"] for r in records] == list(written)
    for record, case in zip(records, written.values()):
        check(case, record["error"])


def test_http_predict_answers_every_file_with_its_reason():
    with client_for() as client:
        for start in range(0, len(CASES), 16):  # the default limit of files per request
            chunk = CASES[start : start + 16]
            response = client.post("/v1/predict", files=files(*[(c.name, c.data) for c in chunk]))
            results = response.json()["results"]
            assert [r["path"] for r in results] == [c.name for c in chunk]
            for record, case in zip(results, chunk):
                check(case, record["error"])
        odd = "\u00e9t\u00e9 \U0001f600 with space.jpg"
        (record,) = client.post("/v1/predict", files=files((odd, encode(random_image(5))))).json()["results"]
        assert record["path"] == odd and record["error"] is None


GOOD = 12
#: File names that must survive every step: spaces, unicode, bytes that are not UTF-8.
ODD_NAMES = [
    b"with space.jpg",
    "\u00e9t\u00e9 \U0001f600.jpg".encode(),
    b"latin1 \xe9t\xe9.jpg",
    b"\xff\xfe.png",
]


def hostile_folder(root: Path) -> tuple[list[str], list[str]]:
    """The corpus, good images (some with odd names), links that loop or dangle, a FIFO: the
    display names that must be scored, and those that must be reported as failures."""
    sub = root / "sub"
    sub.mkdir(parents=True)
    good = []
    for i in range(GOOD):
        (sub / f"good {i}.jpg").write_bytes(encode(random_image(i)))
        good.append(f"sub/good {i}.jpg")
    for raw in ODD_NAMES:
        (root / os.fsdecode(raw)).write_bytes(encode(random_image(len(raw)), "PNG"))
        good.append(raw.decode("utf-8", "backslashreplace"))
    cases = {f"hostile/{c.name}": c for c in CASES}
    write_corpus(root / "hostile")
    good += [name for name, case in cases.items() if case.outcome is None]
    bad = [name for name, case in cases.items() if case.outcome is not None]
    os.symlink("loop-b.jpg", root / "loop-a.jpg")
    os.symlink("loop-a.jpg", root / "loop-b.jpg")
    os.symlink("missing.jpg", root / "dangling.jpg")
    os.symlink("..", sub / "up")  # a loop through a folder link: not followed
    os.mkfifo(root / "pipe.jpg")
    bad += ["loop-a.jpg", "loop-b.jpg", "dangling.jpg", "pipe.jpg"]
    return good, bad


def test_scan_of_a_hostile_folder_scores_every_good_image_and_reports_each_bad_one(model, tmp_path):
    root = tmp_path / "in"
    good, bad = hostile_folder(root)
    out = tmp_path / "r.jsonl"
    result = run("scan", root, "--model", model, "--out", out, "-q")
    assert result.exit_code == 1, result.output
    rows = {r["path"].removeprefix(f"{root}/"): r for r in read_table(out)}
    assert sorted(rows) == sorted(good + bad)
    assert all(rows[name]["error"] is None and rows[name]["label"] for name in good)
    assert all(rows[name]["error"] and rows[name]["label"] is None for name in bad)
    assert "symbolic links" in rows["loop-a.jpg"]["error"] and "dangling" in rows["dangling.jpg"]["error"]
    assert "not a regular file" in rows["pipe.jpg"]["error"]
    again = run("scan", root, "--model", model, "--out", out, "-q")
    assert f"skipped: {len(good) + len(bad)} file(s)" in again.output  # odd names resume too


def test_an_unreadable_file_is_reported_not_skipped(detector, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not stop root from reading the file")
    locked = tmp_path / "locked.jpg"
    locked.write_bytes(encode(random_image(1)))
    locked.chmod(0)
    (record,) = detector.predict([locked])
    assert record.error == "permission denied"


def zip_bomb(archive: zipfile.ZipFile, name: str, size: int) -> None:
    """A member of `size` zero bytes: a few hundred KB in the zip, over the file-size limit."""
    chunk = bytes(1 << 20)
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with archive.open(info, "w", force_zip64=True) as member:
        for _ in range(-(-size // len(chunk))):
            member.write(chunk)


def test_a_hostile_zip_is_read_in_place_traversal_names_write_nothing_and_bombs_are_refused(
    seed_model_file, tmp_path
):
    archive = tmp_path / "box" / "in.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("../x.jpg", encode(random_image(1)))
        z.writestr("../../etc/y.png", encode(random_image(2), "PNG"))
        z.writestr("/abs.jpg", encode(random_image(3)))
        zip_bomb(z, "bomb.png", MAX_FILE_BYTES + 1)
        for case in CASES:
            z.writestr(f"hostile/{case.name}", case.data)
    assert archive.stat().st_size < 2 * 2**20
    before = sorted(tmp_path.rglob("*"))
    out = tmp_path / "box" / "r.csv"
    result = run("scan", archive, "--model", seed_model_file, "--out", out, "-q")
    assert result.exit_code == 1
    assert sorted(tmp_path.rglob("*")) == sorted([*before, out])  # nothing extracted anywhere
    rows = {r["path"].removeprefix(f"{archive}/"): r for r in read_table(out)}
    assert all(rows[name]["label"] for name in ("../x.jpg", "../../etc/y.png", "/abs.jpg"))
    assert "over the 268,435,456-byte limit" in rows["bomb.png"]["error"]
    for case in CASES:
        check(case, rows[f"hostile/{case.name}"]["error"] or None)


def test_scan_reads_non_utf8_names_from_stdin_under_a_strict_locale(tmp_path):
    """Under a UTF-8 locale such as en_US.UTF-8, Python decodes standard input strictly, so
    `find ... | fakelens scan -` would stop at the first name that is not UTF-8."""
    names = [tmp_path / os.fsdecode(raw) for raw in ODD_NAMES]
    for i, path in enumerate(names):
        path.write_bytes(encode(random_image(i)))
    listing = b"".join(os.fsencode(path) + b"\n" for path in names)
    out = tmp_path / "r.jsonl"
    command = [sys.executable, "-c", "from fakelens.cli import app; app()", "scan", "-", "--out", str(out)]
    command += ["--model", "seed", "--backend", "onnx", "-q"]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    finished = subprocess.run(command, input=listing, capture_output=True, env=env, timeout=120)
    assert finished.returncode == 0, finished.stderr.decode(errors="replace")[-2000:]
    rows = read_table(out)
    assert sorted(r["path"] for r in rows) == sorted(
        os.fsencode(p).decode(errors="backslashreplace") for p in names
    )


def test_data_info_names_each_unreadable_file_with_the_decoders_reason(tiny_layout, tmp_path):
    from fakelens.data.info import dataset_info

    copy = tmp_path / "copy"
    shutil.copytree(tiny_layout, copy)
    cases = [*not_images(), *bombs(), *odd_but_valid()]
    write_corpus(copy / "train" / "FAKE", cases)
    unreadable = dataset_info(copy, quiet=True)["unreadable"]
    for case in cases:
        reason = unreadable.get(str(copy / "train" / "FAKE" / case.name))
        check(case, reason)
