"""The listing layer under hostile input (tests/hostile_listing.py): zip members that will not
inflate, zip names that are not UTF-8 though flagged so, lists of paths with NUL bytes and huge
lines, folders nested past the recursion limit and PATH_MAX, links out of the folder scanned.

Through the API every good entry is read and every bad one named with its reason; through the
CLI each gets exactly one row, every good image is scored, and the scan exits 1.
"""

from __future__ import annotations

import io
import json
import os
import re
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_listing import (
    REPORTED_LINES,
    UTF8,
    Member,
    broken_members,
    deep_folders,
    good_members,
    member,
    odd_names,
    outside_links,
    path_lists,
    remove_tree,
    shown_names,
    zip_bytes,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fakelens.cli import app
from fakelens.data.layout import OUTSIDE_LINK, DisplayNameReader, PathListSource, open_input, open_source
from fakelens.data.listing import list_images
from fakelens.data.zipindex import read_index
from fakelens.errors import DatasetLayoutError, ImageDecodeError

#: The shipped seed model on onnxruntime: the quickest to load.
MODEL = ("--model", "seed", "--backend", "onnx", "-q")
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def write_zip(path: Path, members: list[Member]) -> Path:
    path.write_bytes(zip_bytes(members))
    return path


def scan(source: object, out: Path, *options: str, stdin: bytes | None = None) -> dict[str, dict]:
    """Rows of `fakelens scan SOURCE`, by path; the scan must exit 1 (some inputs failed)."""
    result = CliRunner().invoke(
        app, ["scan", str(source), "--out", str(out), *MODEL, *options], input=stdin, catch_exceptions=False
    )
    assert result.exit_code == 1, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    by_path = {row["path"]: row for row in rows}
    assert len(by_path) == len(rows), "one row per entry"
    return by_path


def printable(name: str) -> str:
    """A name as results show it: bytes that are not UTF-8 as `\\xNN`."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_rows(rows: dict[str, dict], expected: dict[str, str | None]) -> None:
    """Exactly the rows expected: judged where the outcome is None, else an error matching it."""
    assert sorted(rows) == sorted(expected)
    for path, outcome in expected.items():
        row = rows[path]
        if outcome is None:
            assert row["error"] is None and row["label"] in ("ai", "real"), (path, row["error"])
        else:
            assert row["label"] is None and re.search(outcome, row["error"]), (path, row["error"])


# --- Class 2: zip members that fail to inflate ---------------------------------------------


def test_each_zip_member_that_will_not_inflate_is_an_error_naming_it_and_the_rest_read(tmp_path):
    members = good_members() + broken_members()
    archive = write_zip(tmp_path / "mixed.zip", members)
    with open_source(archive) as source:
        assert source.names() == sorted(m.name.decode() for m in members)
        for item in members:
            name = item.name.decode()
            if item.outcome is None:
                assert source.read(name) == item.content, name
                continue
            with pytest.raises(ImageDecodeError) as caught:
                source.read(name)
            assert caught.value.source == f"{archive}/{name}"
            assert re.search(item.outcome, caught.value.reason), (name, caught.value.reason)


def test_a_bomb_member_is_cut_at_its_declared_size_not_inflated_whole(tmp_path):
    bombs = [m for m in broken_members() if "bomb" in m.name.decode()]
    archive = write_zip(tmp_path / "bombs.zip", bombs)
    with open_source(archive) as source:
        tracemalloc.start()
        try:
            for item in bombs:
                with pytest.raises(ImageDecodeError, match="bad CRC-32 or size"):
                    source.read(item.name.decode())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 4 << 20  # each inflates to 64 MiB if not cut


def test_cli_scan_of_a_zip_with_broken_members_and_odd_names_scores_every_good_one(tmp_path):
    good, broken = good_members(), broken_members()
    archive = write_zip(tmp_path / "in.zip", good + broken + odd_names())
    rows = scan(archive, tmp_path / "r.jsonl")
    expected = {f"{archive}/{m.name.decode()}": m.outcome for m in good + broken}
    expected |= {f"{archive}/{shown}": None for shown in shown_names()}
    check_rows(rows, expected)


def test_report_names_each_member_damaged_since_the_scan_and_shows_the_rest(tmp_path):
    archive = tmp_path / "in.zip"
    good = good_members()
    write_zip(archive, good)
    out = tmp_path / "r.jsonl"
    assert CliRunner().invoke(app, ["scan", str(archive), "--out", str(out), *MODEL]).exit_code == 0
    damaged = [member(m.name, m.content, m.method, data=b"\xff" * 40) for m in good[1:]]  # not stored
    write_zip(archive, [good[0], *damaged])
    html = tmp_path / "r.html"
    result = CliRunner().invoke(
        app, ["report", str(out), "--out", str(html), "--top", "4"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    text = html.read_text()
    assert text.count("<figure>") == 1
    for item in damaged:
        assert f"{archive}/{item.name.decode()}: no heatmap, cannot read zip member" in text


# --- Class 3: names flagged UTF-8 that are not UTF-8 -------------------------------------------


def test_names_flagged_utf8_that_are_not_are_listed_with_their_bytes_and_read(tmp_path):
    archive = write_zip(tmp_path / "names.zip", odd_names())
    with pytest.raises(UnicodeDecodeError):  # what zipfile makes of the whole archive
        zipfile.ZipFile(archive)
    with open_source(archive) as source:
        names = source.names()
        assert sorted(map(printable, names)) == sorted(shown_names())
        assert sorted(source.read(name) for name in names) == sorted(m.content for m in odd_names())


def test_such_a_name_outside_the_fast_path_refuses_the_archive_by_name(tmp_path):
    plain = zip_bytes(odd_names())  # data before the archive: only zipfile reads that, and refuses
    archive = tmp_path / "prepended.zip"
    archive.write_bytes(b"#!/bin/sh\n" + plain)
    with pytest.raises(DatasetLayoutError, match=r"prepended\.zip: not a readable zip file"):
        open_source(archive)
    with DisplayNameReader() as reader, pytest.raises(ImageDecodeError, match="not a readable zip file"):
        reader.read(f"{archive}/cp437-x.jpg")  # as `report` reads a row: that row's error only


# --- Class 4: lists of paths with NUL bytes and huge lines -------------------------------------


def list_row_name(line: bytes) -> str:
    """The name a line of a list gets in results: its path, a NUL as `\\x00`, a line too long
    for any path cut to 200 characters, bytes that are not UTF-8 as `\\xNN`."""
    text = os.fsdecode(line).rstrip("\r").replace("\0", "\\x00")
    return printable(text if len(text) <= 1 << 16 else f"{text[:200]}...")


def test_list_lines_that_cannot_be_paths_are_reported_by_line_and_the_rest_listed(tmp_path):
    cases = path_lists(tmp_path)
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"\n".join([b"", b"  ", *(line for line, _ in cases.values())]) + b"\n")
    with open_input(f"@{listing}") as source:
        names = list(source.iter_names())
        assert names == [
            os.fsdecode(line).rstrip("\r") for case, (line, _) in cases.items() if case not in REPORTED_LINES
        ]
        assert [name.encode("utf-8", "surrogateescape") for name, _ in source.unlisted] == [
            os.fsencode(tmp_path) + b"/pla\\x00in.jpg",
            b"\\x00",
            b"\xff\\x00\xfe.jpg",
            b"x" * 200 + b"...",
        ]
        assert [reason for _, reason in source.unlisted] == [
            *(f"line {number} of {listing} holds a NUL byte, which no path can" for number in (7, 8, 9)),
            f"line 10 of {listing} is 10,485,764 characters: no path is so long",
        ]
        for name in names:
            outcome = next(o for line, o in cases.values() if os.fsdecode(line).rstrip("\r") == name)
            if outcome is None:
                assert source.read(name)[:2] == b"\xff\xd8"
            else:
                with pytest.raises(ImageDecodeError, match=outcome):
                    source.read(name)


def test_cli_scan_of_lists_with_nul_and_huge_lines_gives_each_line_a_row(tmp_path):
    cases = path_lists(tmp_path)
    data = b"\n".join(line for line, _ in cases.values()) + b"\n\n"
    listing = tmp_path / "list.txt"
    listing.write_bytes(data)
    expected = {list_row_name(line): outcome for line, outcome in cases.values()}
    check_rows(scan(f"@{listing}", tmp_path / "a.jsonl"), expected)
    check_rows(scan("-", tmp_path / "b.jsonl", stdin=data), expected)


#: Pieces of list lines: whitespace, NUL, CR, bytes that are not UTF-8, and three characters
#: that Python's `splitlines` (not `readline`) takes for line ends: U+0085, U+2028, U+001C.
LINE_PIECES = b"a|.jpg|/| |\t|\x0b|\x0c|\x1c|\x00|\r|\xff|\xc3|\xc3\xa9|\xc2\x85|\xe2\x80\xa8".split(b"|")
line_bytes = st.lists(st.sampled_from(LINE_PIECES), max_size=8).map(b"".join) | st.binary(max_size=12).map(
    lambda data: data.replace(b"\n", b"")
)


@PROPERTY
@given(lines=st.lists(line_bytes, max_size=10), crlf=st.booleans())
def test_any_list_gives_one_name_or_one_reported_line_for_each_line_that_is_not_blank(lines, crlf):
    end = b"\r\n" if crlf else b"\n"
    stream = io.TextIOWrapper(
        io.BytesIO(end.join(lines)), encoding="utf-8", errors="surrogateescape", newline="\n"
    )
    source = PathListSource(stream, Path("<stdin>"))
    names = list(source.iter_names())
    texts = [(number, os.fsdecode(line).rstrip("\r")) for number, line in enumerate(lines, 1)]
    kept = [(number, text) for number, text in texts if text.strip()]
    assert names == [text for _, text in kept if "\0" not in text]
    assert source.unlisted == [
        (text.replace("\0", "\\x00"), f"line {number:,} of <stdin> holds a NUL byte, which no path can")
        for number, text in kept
        if "\0" in text
    ]


# --- Class 5: deep folders and paths past PATH_MAX ---------------------------------------------


@pytest.fixture
def deep(tmp_path) -> Iterator[Path]:
    """A folder holding `deep_folders`, removed here: pytest's clean-up cannot remove them."""
    root = tmp_path / "in"
    root.mkdir()
    yield root
    remove_tree(root)


def test_a_folder_1100_deep_is_walked_and_paths_past_path_max_are_reported(deep):
    expected = deep_folders(deep)
    bottom, too_long_file, too_long_folder = expected
    with open_source(deep) as source:
        assert list(source.iter_names()) == [bottom, too_long_file]
        assert source.unlisted == [(too_long_folder, expected[too_long_folder])]
        assert source.read(bottom)[:2] == b"\xff\xd8"
        with pytest.raises(ImageDecodeError, match="File name too long"):
            source.read(too_long_file)
    assert open_source(deep / "deep").names() == [bottom.removeprefix("deep/")]
    with pytest.raises(DatasetLayoutError, match="cannot list this folder: File name too long"):
        open_source(deep / "long").names()


def test_the_walk_is_depth_first_with_each_folders_entries_sorted(tmp_path):
    for name in ("b.jpg", "b/c.jpg", "b/a/x.jpg", "a.jpg", "b0.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    with open_source(tmp_path) as source:
        assert list(source.iter_names()) == ["a.jpg", "b/a/x.jpg", "b/c.jpg", "b.jpg", "b0.jpg"]
        assert source.names() == sorted(source.iter_names())


def test_cli_scan_of_deep_and_too_long_folders_gives_each_a_row(deep, tmp_path):
    expected = {f"{deep}/{name}": outcome for name, outcome in deep_folders(deep).items()}
    check_rows(scan(deep, tmp_path / "r.jsonl"), expected)


# --- Links out of the folder scanned -----------------------------------------------------------


def test_links_out_of_the_folder_are_reported_not_read_unless_followed(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    links = outside_links(root, elsewhere)
    outside = sorted(name for name, outcome in links.items() if outcome)
    inside = sorted(name for name, outcome in links.items() if not outcome)
    with open_source(root) as source:  # notes.txt leads out too, but is no image: not reported
        assert sorted(source.iter_names()) == sorted([*inside, "in/real.jpg"])
        assert sorted(source.unlisted) == [(name, OUTSIDE_LINK) for name in outside]
    with open_source(root, follow_links=True) as source:
        assert sorted(source.iter_names()) == sorted([*inside, *outside, "in/real.jpg", "notes.txt"])
        assert source.unlisted == []
    assert open_source(root).names() == sorted([*inside, *outside, "in/real.jpg", "notes.txt"])
    listed, _, unlisted = list_images(root)  # the Ray engine's listing
    assert sorted(row["path"] for row in listed) == sorted(
        f"{root}/{name}" for name in [*inside, "in/real.jpg"]
    )
    assert sorted(unlisted) == [(f"{root}/{name}", OUTSIDE_LINK) for name in outside]
    assert len(list_images(root, follow_links=True)[0]) == len(inside) + len(outside) + 1


def test_cli_scan_skips_links_out_of_the_folder_with_the_reason_and_follows_them_when_asked(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    links = {**outside_links(root, elsewhere), "in/real.jpg": None}
    rows = scan(root, tmp_path / "r.jsonl")
    check_rows(rows, {f"{root}/{name}": outcome for name, outcome in links.items()})
    assert rows[f"{root}/passwd.jpg"]["size"] is None  # /etc/passwd was not looked at
    followed = scan(root, tmp_path / "f.jsonl", "--follow-links")
    expected = {f"{root}/{name}": None for name in links} | {f"{root}/passwd.jpg": "not a recognised image"}
    check_rows(followed, expected)


# --- Zip names: a property -----------------------------------------------------------------


#: Pieces of member names: separators, NUL, bytes that are not UTF-8 (an encoded surrogate among
#: them), an emoji, and a central directory record's signature.
NAME_PIECES = b"a|.jpg|/| |\\|\x00|\xff|\x80|\xc3|\xc3\xa9|\xed\xa0\x80|\xf0\x9f\x98\x80".split(b"|")
NAME_PIECES.append(b"PK\x01\x02")
name_bytes = st.lists(st.sampled_from(NAME_PIECES), max_size=6).map(b"".join) | st.binary(max_size=10)


def decoded(raw: bytes, flagged: bool) -> str:
    """A member's name as the listing gives it: `zipfile`'s decoding, cut at a NUL as it cuts."""
    name = raw.decode("utf-8", "surrogateescape") if flagged else raw.decode("cp437")
    return name.split("\0", 1)[0]


def is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@PROPERTY
@given(entries=st.lists(st.tuples(name_bytes, st.booleans()), max_size=8))
def test_any_member_names_list_once_each_and_read_back_or_refuse_the_archive_by_name(tmp_path, entries):
    members = [member(raw, b"%d" % at, flags=flagged * UTF8) for at, (raw, flagged) in enumerate(entries)]
    archive = write_zip(tmp_path / "names.zip", members)
    expected = {decoded(raw, flagged): b"%d" % at for at, (raw, flagged) in enumerate(entries)}
    expected = {name: content for name, content in expected.items() if not name.endswith("/")}
    try:
        source = open_source(archive)
    except DatasetLayoutError as refused:  # zipfile's reading, which fails on such names
        fd = os.open(archive, os.O_RDONLY)
        assert read_index(fd) is None
        os.close(fd)
        assert "not a readable zip file" in str(refused)
        assert any(flagged and not is_utf8(raw) for raw, flagged in entries)
        return
    with source:
        assert sorted(source.names()) == sorted(expected)
        assert all(source.read(name) == content for name, content in expected.items())
