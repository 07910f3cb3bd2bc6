"""The numpy central-directory reader agrees with `zipfile`, or hands the archive back to it."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakelens.data.layout import open_source
from fakelens.data.zipindex import ZipIndex, read_index


def index_of(path: Path) -> ZipIndex | None:
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_index(fd)
    finally:
        os.close(fd)


def zipfile_index(path: Path) -> ZipIndex:
    with zipfile.ZipFile(path) as archive:
        return ZipIndex.from_infos(archive.infolist())


def assert_same_members(fast: ZipIndex, expected: ZipIndex) -> None:
    assert fast.positions.keys() == expected.positions.keys()
    for name in expected.positions:
        assert fast.get(name) == expected.get(name), name


def write_zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]], **options) -> Path:
    with zipfile.ZipFile(path, "w", **options) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"), min_size=1)


@pytest.mark.filterwarnings("ignore:Duplicate name")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    members=st.lists(st.tuples(st.lists(names, min_size=1, max_size=3), st.binary(max_size=64)), max_size=8),
    compression=st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]),
    # zipfile cannot read back an archive whose comment holds the end record's signature.
    comment=st.binary(max_size=40).filter(lambda comment: b"PK\x05\x06" not in comment),
)
def test_agrees_with_zipfile_on_any_names_sizes_and_comments(tmp_path, members, compression, comment):
    target = tmp_path / "any.zip"
    with zipfile.ZipFile(target, "w", compression=compression) as archive:
        archive.comment = comment
        for parts, data in members:
            archive.writestr("/".join(parts), data)
        archive.writestr("a folder/", b"")
    fast = index_of(target)
    assert fast is not None
    assert_same_members(fast, zipfile_index(target))
    assert "a folder/" not in fast.positions


def test_code_page_437_names_and_repeated_names_read_as_zipfile_reads_them(tmp_path):
    target = tmp_path / "legacy.zip"
    with pytest.warns(UserWarning, match="Duplicate name"):
        members = [("x.jpg", b"first"), ("cafX.jpg", b"cp437"), ("x.jpg", b"second"), ("ü.jpg", b"utf8")]
        write_zip(target, members)
    # zipfile writes non-ASCII names as flagged UTF-8; old tools wrote code page 437 (0x82: é).
    target.write_bytes(target.read_bytes().replace(b"cafX.jpg", b"caf\x82.jpg"))
    with zipfile.ZipFile(target) as archive:
        assert any(not info.flag_bits & 0x800 and not info.filename.isascii() for info in archive.infolist())
    fast = index_of(target)
    assert fast is not None
    assert_same_members(fast, zipfile_index(target))
    with open_source(target) as source:
        assert source.read("x.jpg") == b"second"


def test_zip64_end_records_are_read(tmp_path):
    # Over 65,535 members: the end record defers to the ZIP64 one (CIFAKE has 120,006).
    target = write_zip(tmp_path / "many.zip", [(f"{i}.jpg", b"") for i in range(0x10000 + 5)])
    fast = index_of(target)
    assert fast is not None and len(fast) == 0x10000 + 5
    assert_same_members(fast, zipfile_index(target))


@pytest.mark.parametrize(
    "case", ["zip64 member fields", "prepended data", "signature in a name", "NUL in a name"]
)
def test_archives_outside_the_fast_path_fall_back_to_zipfile(tmp_path, monkeypatch, case):
    target = tmp_path / "odd.zip"
    if case == "zip64 member fields":  # as zipfile writes members over 4 GiB, in miniature
        with monkeypatch.context() as patch:
            patch.setattr(zipfile, "ZIP64_LIMIT", 4)
            write_zip(target, [("big.jpg", b"payload")])
    elif case == "prepended data":
        write_zip(tmp_path / "plain.zip", [("a.jpg", b"payload")])
        target.write_bytes(b"#!/bin/sh\nexit 0\n" + (tmp_path / "plain.zip").read_bytes())
    elif case == "signature in a name":
        write_zip(target, [("PK\x01\x02.jpg", b"payload")])
    else:
        data = write_zip(tmp_path / "plain.zip", [("a.jpgXtail", b"payload")]).read_bytes()
        target.write_bytes(data.replace(b"a.jpgXtail", b"a.jpg\x00tail"))
    assert index_of(target) is None
    with open_source(target) as source:
        [name] = source.names()
        assert source.read(name) == b"payload"


def test_a_member_with_zip64_local_fields_reads_on_the_fast_path(tmp_path):
    target = tmp_path / "forced.zip"
    with zipfile.ZipFile(target, "w") as archive, archive.open("a.jpg", "w", force_zip64=True) as member:
        member.write(b"payload")
    assert index_of(target) is not None
    with open_source(target) as source:
        assert source.read("a.jpg") == b"payload"


def test_a_truncated_central_directory_is_not_misread(tmp_path):
    data = write_zip(tmp_path / "plain.zip", [("a.jpg", b"payload"), ("b.jpg", b"more")]).read_bytes()
    at = data.rindex(b"PK\x01\x02")
    target = tmp_path / "cut.zip"
    target.write_bytes(data[: at + 20] + data[data.rindex(b"PK\x05\x06") :])
    assert index_of(target) is None
