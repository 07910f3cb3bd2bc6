"""Where images come from: a folder, a zip or a list of paths, read in place; the Kaggle layout.

A source lists its files by relative name and reads their bytes; nothing is extracted to disk.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import posixpath
import struct
import sys
import threading
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from fakelens.config import CHECKOUT_DATA, DATA_ENV, IMAGE_SUFFIXES, KAGGLE_HANDLE, MAX_FILE_BYTES
from fakelens.data.decode import read_file_bytes
from fakelens.data.zipindex import Member, ZipIndex, read_index
from fakelens.errors import DatasetLayoutError, ImageDecodeError

#: A zip local file header: signature, then (after 22 bytes) the name and extra field lengths.
_LOCAL_HEADER, _LOCAL_SIGNATURE = struct.Struct("<4s22xHH"), b"PK\x03\x04"
#: Bytes read past the local header in the same call, to cover the name and extra field.
_HEADER_SLACK = 512
#: General-purpose flag bit 0: the member is encrypted.
_ZIP_ENCRYPTED = 0x1

#: Kaggle folder names -> the labels users see.
FOLDER_LABELS = {"FAKE": "ai", "REAL": "real"}
SPLITS = ("train", "test")


class ImageSource:
    """A folder or zip of files, listed by relative POSIX name. Use it as a context manager."""

    path: Path
    #: (folder name, reason) for folders that could not be listed: reported, never skipped.
    unlisted: Sequence[tuple[str, str]] = ()

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release open handles (a zip file)."""

    def names(self) -> list[str]:
        """Relative names of every file, sorted."""
        raise NotImplementedError

    def iter_names(self, prefix: str = "") -> Iterator[str]:
        """Every file's name that starts with `prefix`, one at a time, in a fixed order (a scan
        never holds the listing); each source skips what cannot start with `prefix` as cheaply
        as it can."""
        raise NotImplementedError

    def stat(self, name: str) -> tuple[str, str]:
        """(size in bytes, modification time in ISO 8601) as text: what tells a file changed.
        Empty strings when the file cannot be examined (reading it will then say why)."""
        raise NotImplementedError

    def read(self, name: str) -> bytes:
        """The bytes of one file; `ImageDecodeError` naming it if it cannot be read."""
        raise NotImplementedError

    def display_name(self, name: str) -> str:
        """How a file is named in results and errors: the source path joined with `name`."""
        return self._prefix + name

    @functools.cached_property
    def _prefix(self) -> str:
        """`path` as `Path` joins it ("x.zip/", or "" for "."), computed once: joining Path
        objects for every file of a large scan is measurably slow."""
        return str(self.path / "_")[:-1]

    def fingerprint(self) -> str:
        """A cheap hash of the listing (names, sizes, checksums or mtimes): the cache key."""
        raise NotImplementedError


class FolderSource(ImageSource):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._names: list[str] | None = None
        self.unlisted: list[tuple[str, str]] = []

    def names(self) -> list[str]:
        """Every file below the folder; links to folders are not followed (no loops)."""
        if self._names is None:
            found = []
            for dirpath, _dirs, files in os.walk(self.path, onerror=_refuse_unlistable, followlinks=False):
                for file in files:
                    found.append(Path(dirpath, file).relative_to(self.path).as_posix())
            self._names = sorted(found)
        return self._names

    def iter_names(self, prefix: str = "") -> Iterator[str]:
        """Depth first, each folder's entries sorted by name; links to folders are not followed,
        nor folders whose files cannot start with `prefix`."""
        return _walk(self.path, "", self.unlisted, prefix)

    def read(self, name: str) -> bytes:
        return read_file_bytes(self.display_name(name))

    def stat(self, name: str) -> tuple[str, str]:
        return _file_stat(self.display_name(name))

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name in self.names():
            try:
                stat = (self.path / name).stat()
                digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            except OSError:
                digest.update(f"{name}\0unreadable\n".encode())
        return digest.hexdigest()


class ZipSource(ImageSource):
    """Reads members straight from the archive. Member names are only ever used as keys, so
    names such as `../x.jpg` cannot write anywhere.

    The member table comes from `zipindex` (`zipfile` builds an object per member, too slow for
    archives of millions). Stored (uncompressed) members, the usual case for image archives, are
    read with one positioned read each and checked against their CRC-32: `ZipFile.open` spends
    longer than decoding a small JPEG on Python-level header parsing, and makes threads take turns
    on the archive's file lock. `zipfile` is opened only for what that does not cover.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise DatasetLayoutError(f"{path}: not a readable zip file ({exc.strerror or exc})") from None
        self._zip: zipfile.ZipFile | None = None
        self._zip_lock = threading.Lock()
        try:
            index = read_index(self._fd)
            self._index = index if index is not None else ZipIndex.from_infos(self._archive().infolist())
        except BaseException:
            self.close()
            raise

    def _archive(self) -> zipfile.ZipFile:
        """The archive as `zipfile` reads it, opened on first need."""
        with self._zip_lock:
            if self._zip is None:
                try:
                    self._zip = zipfile.ZipFile(self.path)
                except (zipfile.BadZipFile, OSError) as exc:
                    raise DatasetLayoutError(f"{self.path}: not a readable zip file ({exc})") from None
            return self._zip

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        os.close(self._fd)

    def names(self) -> list[str]:
        return sorted(self._index.positions)

    def iter_names(self, prefix: str = "") -> Iterator[str]:
        """Members starting with `prefix`, sorted: picked first, so only they are sorted (the
        directory's order is the archive's, not sorted)."""
        return iter(sorted(name for name in self._index.positions if name.startswith(prefix)))

    def read(self, name: str) -> bytes:
        member = self._index.get(name)
        if member is None:
            raise ImageDecodeError(self.display_name(name), "no such member in the zip")
        if member.file_size > MAX_FILE_BYTES:
            raise ImageDecodeError(
                self.display_name(name),
                f"zip member claims {member.file_size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit",
            )
        stored = self._read_stored(member)
        if stored is not None:
            return stored
        try:  # compressed, encrypted or damaged: zipfile decompresses, or says what is wrong
            with self._archive().open(name) as opened:
                return opened.read()  # stops at the size checked above
        except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError, DatasetLayoutError) as exc:
            raise ImageDecodeError(self.display_name(name), f"cannot read zip member: {exc}") from None

    def _read_stored(self, member: Member) -> bytes | None:
        """A stored member's bytes if its local header and CRC-32 check out, else None."""
        if member.compress_type != zipfile.ZIP_STORED or member.flag_bits & _ZIP_ENCRYPTED:
            return None
        size = member.compress_size
        try:
            block = os.pread(self._fd, _LOCAL_HEADER.size + _HEADER_SLACK + size, member.header_offset)
            if len(block) < _LOCAL_HEADER.size:
                return None
            signature, name_length, extra_length = _LOCAL_HEADER.unpack_from(block)
            start = _LOCAL_HEADER.size + name_length + extra_length
            data = block[start : start + size]
            if len(data) < size:  # an unusually long name or extra field
                data = os.pread(self._fd, size, member.header_offset + start)
        except OSError:
            return None
        if signature != _LOCAL_SIGNATURE or len(data) != size or zlib.crc32(data) != member.CRC:
            return None
        return data

    def stat(self, name: str) -> tuple[str, str]:
        member = self._index.get(name)
        if member is None:
            return "", ""
        # Formatted, not parsed: a damaged entry may carry an impossible date (month 0).
        return str(member.file_size), "%04d-%02d-%02dT%02d:%02d:%02d" % member.date_time  # noqa: UP031 (2x faster)

    def fingerprint(self) -> str:
        names = self.names()
        records = self._index.records[[self._index.positions[name] for name in names]]
        digest = hashlib.sha256()
        for name, size, crc in zip(names, records["file_size"].tolist(), records["crc"].tolist()):
            digest.update(f"{name}\0{size}\0{crc}\n".encode())
        return digest.hexdigest()


class PathListSource(ImageSource):
    """Paths listed one per line (a text file, or standard input), each read where it is.

    Relative paths are relative to the current directory; blank lines are skipped. The list is
    read as the scan goes, so it can be longer than memory would hold.
    """

    def __init__(self, lines: Iterable[str], path: Path) -> None:
        self.path = path
        self._lines = lines

    def iter_names(self, prefix: str = "") -> Iterator[str]:
        for line in self._lines:
            name = line.rstrip("\r\n")
            if name.strip() and name.startswith(prefix):
                yield name

    def names(self) -> list[str]:
        return sorted(self.iter_names())

    def read(self, name: str) -> bytes:
        return read_file_bytes(name)

    def stat(self, name: str) -> tuple[str, str]:
        return _file_stat(name)

    def display_name(self, name: str) -> str:
        return name

    def close(self) -> None:
        if hasattr(self._lines, "close") and self._lines is not sys.stdin:
            self._lines.close()


def _walk(root: Path, folder: str, unlisted: list[tuple[str, str]], wanted: str) -> Iterator[str]:
    """Files below `root / folder` whose names start with `wanted`."""
    try:
        entries = sorted(os.scandir(root / folder), key=lambda entry: entry.name)
    except OSError as exc:
        if not folder:
            _refuse_unlistable(exc)
        unlisted.append((folder, f"cannot list this folder: {exc.strerror or exc}"))
        return
    for entry in entries:
        name = f"{folder}{entry.name}"
        if not _is_dir(entry):
            if name.startswith(wanted):
                yield name
        elif not entry.is_symlink() and (name.startswith(wanted) or wanted.startswith(f"{name}/")):
            yield from _walk(root, f"{name}/", unlisted, wanted)


def _refuse_unlistable(exc: OSError) -> None:
    """A folder of a data set or the folder scanned that cannot be listed is an error."""
    raise DatasetLayoutError(f"{exc.filename}: cannot list this folder: {exc.strerror or exc}")


def _is_dir(entry: os.DirEntry) -> bool:
    """Whether `entry` is a folder (or a link to one). A link loop raises in `is_dir`: it is
    listed as a file, and reading it then reports the loop."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _file_stat(path: str) -> tuple[str, str]:
    try:
        info = os.stat(path)
    except OSError:
        return "", ""
    return str(info.st_size), datetime.fromtimestamp(info.st_mtime_ns / 1e9, timezone.utc).isoformat()


def open_input(spec: str | os.PathLike[str]) -> ImageSource:
    """What `fakelens scan` reads: `-` (paths on standard input), `@FILE` (paths listed in FILE,
    one per line), or a folder or zip (`open_source`)."""
    text = os.fspath(spec)
    if text == "-":
        if isinstance(sys.stdin, io.TextIOWrapper):  # file names need not be UTF-8: keep their bytes
            sys.stdin.reconfigure(errors="surrogateescape")
        return PathListSource(sys.stdin, Path("<stdin>"))
    if text.startswith("@") and not Path(text).exists():
        path = Path(text[1:])
        try:
            return PathListSource(open(path, encoding="utf-8", errors="surrogateescape"), path)
        except OSError as exc:
            reason = exc.strerror or exc
            raise DatasetLayoutError(f"{path}: cannot read the list of paths ({reason})") from None
    return open_source(text)


def open_source(path: str | os.PathLike[str]) -> ImageSource:
    """Open a folder or a zip file as an image source."""
    path = Path(path)
    if path.is_dir():
        return FolderSource(path)
    if path.is_file():
        if zipfile.is_zipfile(path):
            return ZipSource(path)
        raise DatasetLayoutError(f"{path}: expected a folder or a .zip file, got another kind of file")
    raise DatasetLayoutError(f"{path}: no such folder or zip file")


def printable_name(name: str) -> str:
    """`name` as valid UTF-8 text: bytes of a file name that are not UTF-8 (which Python keeps as
    surrogate escapes) become `\\xNN`. Result files are UTF-8, and the same file always gets the
    same printable name, so resuming still recognises it."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_image_name(name: str) -> bool:
    return posixpath.splitext(name)[1].lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class LabelledImage:
    """One file of a Kaggle-layout data set."""

    name: str  # relative name inside the source
    split: str  # "train" or "test"
    label: str  # "ai" or "real"
    #: Where the image comes from (a data set, or one of its sources): what evaluation holds out.
    source: str = ""
    #: The generator that made an AI image, when the data says so.
    generator: str = ""


def kaggle_entries(source: ImageSource) -> list[LabelledImage]:
    """Every image under `[prefix/]train|test/REAL|FAKE/`, in sorted order.

    A leading folder (as kagglehub and many zips add) is accepted, provided all entries share it.
    """
    entries = []
    prefixes = set()
    for name in source.names():
        parts = PurePosixPath(name).parts
        if len(parts) < 3 or not is_image_name(name):
            continue
        split, folder = parts[-3], parts[-2]
        if split in SPLITS and folder in FOLDER_LABELS:
            prefixes.add(parts[:-3])
            entries.append(LabelledImage(name, split, FOLDER_LABELS[folder]))
    if not entries:
        raise DatasetLayoutError(
            f"{source.path}: found no images under train/REAL, train/FAKE, test/REAL, test/FAKE. "
            f"Point --data at the CIFAKE folder or zip (`fakelens data download` fetches it)."
        )
    if len(prefixes) > 1:
        shown = ", ".join(sorted("/".join(p) or "." for p in prefixes))
        raise DatasetLayoutError(
            f"{source.path}: found the train/test layout under several folders ({shown}); "
            "point --data at one of them."
        )
    counts = Counter((e.split, e.label) for e in entries)
    missing = [f"{s}/{f}" for s in SPLITS for f, lab in FOLDER_LABELS.items() if not counts[(s, lab)]]
    if missing:
        raise DatasetLayoutError(f"{source.path}: no images in {', '.join(missing)}")
    return entries


def resolve_data_path(path: str | os.PathLike[str] | None) -> Path:
    """The data path given, else $FAKELENS_DATA, else ../shared/data/cifake/cifake.zip relative
    to the current directory (the checkout root, where `make` runs)."""
    if path is not None:
        return Path(path)
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    if CHECKOUT_DATA.exists():
        return CHECKOUT_DATA
    raise DatasetLayoutError(
        "no data path given and CIFAKE was not found. Either run `fakelens data download` "
        f"(kagglehub, dataset {KAGGLE_HANDLE}) and set ${DATA_ENV} to the folder it prints, "
        f"or pass --data pointing at a folder or zip laid out as train|test/REAL|FAKE."
    )


class DisplayNameReader:
    """Reads files by the names results show (`display_name`): a file, or a member of a zip whose
    path leads the name (`data.zip/test/FAKE/1.jpg`). Each zip is opened once; use it as a
    context manager."""

    def __init__(self) -> None:
        self._zips: dict[Path, ZipSource] = {}

    def __enter__(self) -> DisplayNameReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for source in self._zips.values():
            source.close()

    def read(self, name: str) -> bytes:
        # A name under a zip already opened needs no look at the disk (a scan reads millions).
        for source in self._zips.values():
            prefix = source.display_name("")
            if name.startswith(prefix):
                return source.read(name[len(prefix) :])
        path = Path(name)
        if path.is_file():
            return read_file_bytes(path)
        for archive in path.parents:
            if archive in self._zips or (archive.is_file() and zipfile.is_zipfile(archive)):
                if archive not in self._zips:
                    self._zips[archive] = ZipSource(archive)
                return self._zips[archive].read(path.relative_to(archive).as_posix())
            if archive.is_file():
                break
        raise ImageDecodeError(name, "not readable any more: no such file, nor a member of a zip")
