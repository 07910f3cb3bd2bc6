"""Scanning folders and zips: one row per image file, bad files reported, the rest scored."""

from __future__ import annotations

import csv
import json
import zipfile

import pytest
from conftest import encode, random_image

from fakelens.inference import Detector
from fakelens.scan import COLUMNS, scan


@pytest.fixture(scope="module")
def detector(seed_model_file):
    return Detector.load(seed_model_file, batch_size=8)


@pytest.fixture
def mixed_folder(tmp_path):
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    for i in range(20):
        (root / ("sub" if i % 2 else "") / f"good {i}.jpg").write_bytes(encode(random_image(i)))
    (root / "empty.png").write_bytes(b"")
    (root / "fake.jpg").write_text("<html>")
    (root / "notes.txt").write_text("not an image")
    return root


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_scan_folder_writes_one_row_per_image_and_reports_failures(detector, mixed_folder, tmp_path):
    out = tmp_path / "results.csv"
    summary = scan(detector, mixed_folder, out, quiet=True)
    rows = read_csv(out)
    assert list(rows[0]) == list(COLUMNS)
    assert len(rows) == 22 and summary.scored == 20
    errors = {r["path"].rsplit("/", 1)[-1]: r["error"] for r in rows if r["error"]}
    assert set(errors) == {"empty.png", "fake.jpg"}
    assert "empty" in errors["empty.png"] and "not a recognised image" in errors["fake.jpg"]
    assert [p.rsplit("/", 1)[-1] for p in summary.not_images] == ["notes.txt"]
    assert not (tmp_path / "results.csv.partial").exists()


def test_zip_and_folder_give_the_same_scores_and_jsonl_matches_csv(detector, mixed_folder, tmp_path):
    archive = tmp_path / "in.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(mixed_folder.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(mixed_folder).as_posix())
    scan(detector, mixed_folder, tmp_path / "a.csv", quiet=True)
    scan(detector, archive, tmp_path / "b.jsonl", quiet=True)
    from_folder = {r["path"].split("/in/")[-1]: r for r in read_csv(tmp_path / "a.csv")}
    from_zip = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert len(from_zip) == len(from_folder) == 22
    for row in from_zip:
        twin = from_folder[row["path"].split("in.zip/")[-1]]
        assert (row["error"] is None) == (twin["error"] == "")
        if row["error"] is None:
            assert row["ai_probability"] == pytest.approx(float(twin["ai_probability"]), abs=1e-6)


def test_unknown_output_format_is_a_usage_error(detector, mixed_folder, tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.csv, \.jsonl, \.parquet; received .*out\.xlsx"):
        scan(detector, mixed_folder, tmp_path / "out.xlsx", quiet=True)


def test_include_patterns_select_files_by_relative_path(detector, mixed_folder, tmp_path):
    out = tmp_path / "sub.csv"
    summary = scan(detector, mixed_folder, out, include=["sub/*"], quiet=True)
    rows = read_csv(out)
    assert len(rows) == 10 and summary.scored == 10 and not summary.failures and not summary.not_images
    assert all("/sub/" in row["path"] for row in rows)


def test_an_interrupted_scan_keeps_its_rows_in_partial_and_never_publishes(detector, mixed_folder, tmp_path):
    out = tmp_path / "r.csv"
    calls = {"n": 0}
    real_score = detector.score_stream

    def failing_stream(*args, **kwargs):
        for batch in real_score(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt
            yield batch

    detector.score_stream = failing_stream
    try:
        with pytest.raises(KeyboardInterrupt):
            scan(detector, mixed_folder, out, quiet=True)
    finally:
        del detector.score_stream
    assert not out.exists()
    assert len(read_csv(tmp_path / "r.csv.partial")) == 8  # the first batch of 8
