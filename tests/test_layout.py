"""Sources and the Kaggle layout: folders and zips list and read the same files."""

from __future__ import annotations

import shutil
import zipfile

import pytest

from fakelens.data.layout import (
    FolderSource,
    ZipSource,
    kaggle_entries,
    open_input,
    open_source,
    resolve_data_path,
)
from fakelens.errors import DatasetLayoutError, ImageDecodeError


def zip_folder(folder, target, prefix=""):
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(folder).as_posix())
    return target


def test_folder_and_zip_give_the_same_entries_and_bytes(tiny_layout, tmp_path):
    folder = open_source(tiny_layout)
    archive = open_source(zip_folder(tiny_layout, tmp_path / "d.zip"))
    assert isinstance(folder, FolderSource) and isinstance(archive, ZipSource)
    assert kaggle_entries(folder) == kaggle_entries(archive)
    name = kaggle_entries(folder)[0].name
    assert folder.read(name) == archive.read(name)
    assert {e.label for e in kaggle_entries(folder)} == {"ai", "real"}
    assert len(kaggle_entries(folder)) == 24


def test_a_common_leading_folder_is_accepted(tiny_layout, tmp_path):
    archive = open_source(zip_folder(tiny_layout, tmp_path / "d.zip", prefix="cifake/"))
    entries = kaggle_entries(archive)
    assert len(entries) == 24 and entries[0].name.startswith("cifake/")


def test_missing_class_folder_is_named(tiny_layout, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_layout, copy)
    shutil.rmtree(copy / "test" / "FAKE")
    with pytest.raises(DatasetLayoutError, match="no images in test/FAKE"):
        kaggle_entries(open_source(copy))


def test_folder_without_layout_says_what_was_expected(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(DatasetLayoutError, match="train/REAL, train/FAKE, test/REAL, test/FAKE"):
        kaggle_entries(open_source(tmp_path))


def test_open_source_rejects_missing_and_non_zip_files(tmp_path):
    with pytest.raises(DatasetLayoutError, match="no such folder or zip"):
        open_source(tmp_path / "missing")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(DatasetLayoutError, match="expected a folder or a .zip"):
        open_source(text)


def test_zip_member_errors_name_the_member(tiny_layout, tmp_path):
    archive = open_source(zip_folder(tiny_layout, tmp_path / "d.zip"))
    with pytest.raises(ImageDecodeError, match="no such member"):
        archive.read("train/REAL/missing.jpg")


def test_stored_deflated_and_long_header_members_read_back_exactly(tmp_path):
    payload = bytes(range(256)) * 40
    target = tmp_path / "mixed.zip"
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("stored.jpg", payload)
        archive.writestr("deflated.jpg", payload, compress_type=zipfile.ZIP_DEFLATED)
        long_header = zipfile.ZipInfo("d/" * 300 + "long.jpg")
        long_header.extra = b"\xfe\xca" + (2000).to_bytes(2, "little") + bytes(2000)
        archive.writestr(long_header, payload)
        archive.writestr("empty.jpg", b"")
    with open_source(target) as source:
        assert [source.read(name) for name in source.names()] == [payload, payload, b"", payload]


def test_a_damaged_stored_member_is_reported_not_returned(tmp_path):
    target = tmp_path / "damaged.zip"
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("a.jpg", b"A" * 1000)
        archive.writestr("b.jpg", b"B" * 1000)
    data = bytearray(target.read_bytes())
    data[data.index(b"A" * 1000) + 500] ^= 0xFF  # one flipped byte inside a.jpg
    target.write_bytes(bytes(data))
    with open_source(target) as source:
        with pytest.raises(ImageDecodeError, match=r"a\.jpg.*CRC"):
            source.read("a.jpg")
        assert source.read("b.jpg") == b"B" * 1000


def test_path_traversal_names_are_read_as_plain_keys(tmp_path):
    target = tmp_path / "evil.zip"
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("../outside.jpg", b"data")
    with open_source(target) as source:
        assert source.names() == ["../outside.jpg"]
        assert source.read("../outside.jpg") == b"data"
        assert source.display_name("../outside.jpg") == f"{target}/../outside.jpg"


def test_resolve_data_path_prefers_argument_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FAKELENS_DATA", str(tmp_path / "env"))
    assert resolve_data_path(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_path(None) == tmp_path / "env"


def test_resolve_data_path_explains_how_to_get_data(monkeypatch, tmp_path):
    monkeypatch.delenv("FAKELENS_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetLayoutError, match="fakelens data download"):
        resolve_data_path(None)


def test_fingerprint_changes_when_a_file_changes(tiny_layout, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_layout, copy)
    before = open_source(copy).fingerprint()
    (copy / "train" / "REAL" / "0.jpg").write_bytes(b"changed")
    assert open_source(copy).fingerprint() != before


@pytest.mark.parametrize("prefix", ["", "t", "test/", "test/REAL/", "train/FAKE", "test/REAL/zz", "zzz"])
def test_sources_list_the_names_under_a_prefix(tiny_layout, tmp_path, prefix):
    """Folders prune, zips pick then sort, path lists filter: each gives what filtering would."""
    archive = zip_folder(tiny_layout, tmp_path / "d.zip")
    listing = tmp_path / "paths.txt"
    listing.write_text("".join(f"{name}\n" for name in FolderSource(tiny_layout).names()))
    for spec in (tiny_layout, archive, f"@{listing}"):  # a list is read once: open it twice
        with open_input(spec) as whole, open_input(spec) as under_prefix:
            everything = list(whole.iter_names())
            assert list(under_prefix.iter_names(prefix)) == [n for n in everything if n.startswith(prefix)]
            assert len(everything) == 24
