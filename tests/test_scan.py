"""Scanning folders and zips: one row per image file, bad files reported, the rest scored."""

from __future__ import annotations

import json
import os
import zipfile

import pytest
from conftest import encode, random_image, read_csv, read_table
from hypothesis import given
from hypothesis import strategies as st

from fakelens.data.listing import literal_prefix, selector
from fakelens.errors import FakelensError
from fakelens.inference.detector import Detector
from fakelens.scanning.scan import COLUMNS, scan


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


def interrupted_scan(detector, source, out, batches: int) -> None:
    """A scan stopped (as by Ctrl-C) after `batches` batches were written."""
    real_score = detector.score_stream

    def stopped(*args, **kwargs):
        for number, batch in enumerate(real_score(*args, **kwargs)):
            if number == batches:
                raise KeyboardInterrupt
            yield batch

    detector.score_stream = stopped
    try:
        with pytest.raises(KeyboardInterrupt):
            scan(detector, source, out, quiet=True)
    finally:
        del detector.score_stream


def test_an_interrupted_scan_keeps_its_rows_in_partial_and_never_publishes(detector, mixed_folder, tmp_path):
    out = tmp_path / "r.csv"
    interrupted_scan(detector, mixed_folder, out, batches=1)
    assert not out.exists()
    assert len(read_csv(tmp_path / "r.csv.partial")) == 8  # the first batch of 8


def scores_by_name(rows, marker):
    """{relative name: (label, rounded probability, error)} from result rows."""
    return {
        r["path"].split(marker)[-1]: (
            r["label"] or None,
            round(float(r["ai_probability"] or -1), 6),
            r["error"] or None,
        )
        for r in rows
    }


def make_zip(folder, archive):
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(folder).as_posix())
    return archive


def test_folder_zip_list_and_stdin_give_identical_results(detector, mixed_folder, tmp_path, monkeypatch):
    import io

    listing = [str(p) for p in sorted(mixed_folder.rglob("*")) if p.is_file()]
    (tmp_path / "paths.txt").write_text("\n".join(listing) + "\n\n")
    scan(detector, mixed_folder, tmp_path / "folder.csv", quiet=True)
    scan(detector, make_zip(mixed_folder, tmp_path / "in.zip"), tmp_path / "zip.csv", quiet=True)
    scan(detector, f"@{tmp_path / 'paths.txt'}", tmp_path / "list.csv", quiet=True)
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(reversed(listing))))
    scan(detector, "-", tmp_path / "stdin.csv", quiet=True)
    folder = scores_by_name(read_csv(tmp_path / "folder.csv"), "/in/")
    assert len(folder) == 22
    assert scores_by_name(read_csv(tmp_path / "zip.csv"), "in.zip/") == folder
    assert scores_by_name(read_csv(tmp_path / "list.csv"), "/in/") == folder
    assert scores_by_name(read_csv(tmp_path / "stdin.csv"), "/in/") == folder


def test_a_missing_list_file_is_a_usage_error(detector, tmp_path):
    with pytest.raises(FakelensError, match=r"nope\.txt: cannot read the list of paths"):
        scan(detector, f"@{tmp_path / 'nope.txt'}", tmp_path / "out.csv", quiet=True)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_killed_scan_resumes_with_exactly_one_row_per_file(detector, mixed_folder, tmp_path, suffix):
    out = tmp_path / f"r{suffix}"
    interrupted_scan(detector, mixed_folder, out, batches=2)
    partial = tmp_path / f"r{suffix}.partial"
    with open(partial, "a") as handle:  # a kill in the middle of a row
        handle.write('{"path": "torn' if suffix == ".jsonl" else "/torn/path.jpg,ai,0.5")
    summary = scan(detector, mixed_folder, out, quiet=True)
    assert summary.already_done == 16 and summary.scored + len(summary.failures) == 6
    rows = read_table(out)
    assert len(rows) == 22 and len({r["path"] for r in rows}) == 22 and not partial.exists()
    scan(detector, mixed_folder, tmp_path / f"fresh{suffix}", quiet=True)
    assert scores_by_name(rows, "/in/") == scores_by_name(read_table(tmp_path / f"fresh{suffix}"), "/in/")


def test_an_incremental_scan_adds_new_files_and_rescores_changed_ones(detector, mixed_folder, tmp_path):
    out = tmp_path / "r.jsonl"
    scan(detector, mixed_folder, out, quiet=True)
    (mixed_folder / "new.png").write_bytes(encode(random_image(99), "PNG"))
    changed = mixed_folder / "good 0.jpg"
    changed.write_bytes(encode(random_image(1234), quality=50))
    os.utime(changed, (1_000_000_000, 1_000_000_000))
    summary = scan(detector, mixed_folder, out, quiet=True)
    assert summary.already_done == 21 and summary.scored == 2
    rows = {r["path"]: r for r in read_table(out)}
    assert len(rows) == 23 and len(read_table(out)) == 23
    assert rows[str(changed)]["size"] == changed.stat().st_size
    assert rows[str(changed)]["modified"].startswith("2001-09-09T01:46:40")
    again = scan(detector, mixed_folder, out, quiet=True)
    assert again.already_done == 23 and again.scored == 0 and not again.failures


def test_fresh_ignores_earlier_rows(detector, mixed_folder, tmp_path):
    out = tmp_path / "r.csv"
    scan(detector, mixed_folder, out, quiet=True)
    summary = scan(detector, mixed_folder, out, quiet=True, resume=False)
    assert summary.already_done == 0 and len(read_csv(out)) == 22


def test_csv_jsonl_and_parquet_outputs_agree(detector, mixed_folder, tmp_path):
    for suffix in (".csv", ".jsonl", ".parquet"):
        scan(detector, mixed_folder, tmp_path / f"r{suffix}", quiet=True)
    csv_rows, jsonl_rows, parquet_rows = (
        read_table(tmp_path / f"r{s}") for s in (".csv", ".jsonl", ".parquet")
    )
    assert (
        [r["path"] for r in csv_rows] == [r["path"] for r in jsonl_rows] == [r["path"] for r in parquet_rows]
    )
    assert jsonl_rows == parquet_rows
    for text, typed in zip(csv_rows, jsonl_rows):
        assert list(text) == list(COLUMNS) == list(typed)
        assert text["size"] == str(typed["size"]) and text["modified"] == typed["modified"]
        if typed["error"] is None:
            assert float(text["ai_probability"]) == typed["ai_probability"]
        else:
            assert text["error"] == typed["error"] and text["ai_probability"] == ""


def test_a_parquet_output_resumes_and_grows(detector, mixed_folder, tmp_path):
    out = tmp_path / "r.parquet"
    scan(detector, mixed_folder, out, include=["sub/*"], quiet=True)
    assert len(read_table(out)) == 10
    summary = scan(detector, mixed_folder, out, quiet=True)
    assert summary.already_done == 10 and len(read_table(out)) == 22


def test_a_scan_killed_with_sigkill_resumes_with_one_row_per_file(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "many"
    folder.mkdir()
    image = encode(random_image(7))
    for i in range(4000):
        (folder / f"{i:05d}.jpg").write_bytes(image)
    out = tmp_path / "r.jsonl"
    partial = tmp_path / "r.jsonl.partial"
    command = [sys.executable, "-c", "from fakelens.cli import app; app()", "scan", str(folder)]
    command += ["--model", "seed", "--backend", "onnx", "--batch-size", "4", "--out", str(out), "-q"]
    process = subprocess.Popen(command)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not partial.exists() or partial.stat().st_size < 20_000):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists(), "the scan finished before it could be killed"
    written = partial.read_bytes().count(b"\n")
    assert 0 < written < 4000
    finished = subprocess.run(command, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert f"skipped: {written:,} file(s)" in finished.stdout  # every complete row, no more
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4000 and len({r["path"] for r in rows}) == 4000
    assert all(r["error"] is None for r in rows)


def test_a_zip_member_with_an_impossible_date_is_still_scanned(detector, tmp_path):
    archive = tmp_path / "odd.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(zipfile.ZipInfo("a.jpg", date_time=(1980, 0, 0, 0, 0, 0)), encode(random_image(3)))
    summary = scan(detector, archive, tmp_path / "r.jsonl", quiet=True)
    row = read_table(tmp_path / "r.jsonl")[0]
    assert summary.scored == 1 and row["modified"] == "1980-00-00T00:00:00"


def refuse_listing(monkeypatch, folder):
    """Make `folder` unlistable (chmod does not stop root, so os.scandir is made to refuse)."""
    real_scandir = os.scandir

    def scandir(path):
        if os.fspath(path).rstrip("/") == os.fspath(folder).rstrip("/"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_a_folder_that_cannot_be_listed_gets_a_row_and_the_rest_is_scanned(
    detector, mixed_folder, tmp_path, monkeypatch
):
    refuse_listing(monkeypatch, mixed_folder / "sub")
    out = tmp_path / "results.csv"
    summary = scan(detector, mixed_folder, out, quiet=True)
    rows = {r["path"]: r for r in read_csv(out)}
    unlisted = rows[str(mixed_folder / "sub") + "/"]
    assert unlisted["label"] == "" and "cannot list this folder: Permission denied" in unlisted["error"]
    assert summary.scored == 10 and len(summary.failures) == 3
    again = scan(detector, mixed_folder, out, quiet=True)  # resumed: no second row for it
    assert again.already_done == 12 and len(read_csv(out)) == len(rows)


def test_a_scanned_folder_that_cannot_be_listed_is_a_clear_error(
    detector, mixed_folder, tmp_path, monkeypatch
):
    refuse_listing(monkeypatch, mixed_folder)
    with pytest.raises(FakelensError, match="cannot list this folder: Permission denied"):
        scan(detector, mixed_folder, tmp_path / "r.csv", quiet=True)


@pytest.mark.parametrize(
    ("include", "prefix"),
    [
        ((), ""),
        (["test/*"], "test/"),
        (["test/REAL/*", "test/FAKE/*"], "test/"),
        (["*.jpg"], ""),
        (["ab?/*", "abc[de]"], "ab"),
    ],
)
def test_literal_prefix_stops_at_the_first_wildcard(include, prefix):
    assert literal_prefix(include) == prefix


#: Glob pieces, each with what it can match.
_GLOB_PARTS = {
    "a": st.just("a"),
    "/": st.just("/"),
    ".": st.just("."),
    "*": st.text(alphabet="ab/.", max_size=3),
    "?": st.sampled_from("ab/."),
    "[ab]": st.sampled_from("ab"),
    "[!a]": st.sampled_from("b/."),
}


@given(data=st.data())
def test_every_name_an_include_matches_starts_with_its_literal_prefix(data):
    """What lets a scan list only the names under the prefix without missing a match: names
    made to match one of the patterns all start with it."""
    patterns = data.draw(
        st.lists(st.lists(st.sampled_from(list(_GLOB_PARTS)), max_size=6), min_size=1, max_size=3)
    )
    include = ["".join(parts) for parts in patterns]
    chosen = data.draw(st.sampled_from(patterns))
    name = "".join(data.draw(_GLOB_PARTS[part]) for part in chosen)
    assert selector(include)(name)
    assert name.startswith(literal_prefix(include))


def test_a_local_scan_reads_file_uris_like_paths(tmp_path, detector, mixed_folder):
    by_path = scan(detector, mixed_folder, tmp_path / "path.csv", quiet=True)
    by_uri = scan(detector, f"file://{mixed_folder}", tmp_path / "uri.csv", quiet=True)
    assert (by_uri.scored, len(by_uri.failures)) == (by_path.scored, len(by_path.failures)) == (20, 2)
    assert by_uri.not_images == [f"file://{mixed_folder}/notes.txt"]
    uri_rows = {row["path"]: row for row in read_csv(tmp_path / "uri.csv")}
    for row in read_csv(tmp_path / "path.csv"):
        assert uri_rows[f"file://{row['path']}"]["ai_probability"] == row["ai_probability"]
