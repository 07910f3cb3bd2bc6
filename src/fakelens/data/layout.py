"""Where images come from: a folder, a zip or a list of paths, read in place; the Kaggle layout.

A source lists its files by relative name and reads their bytes; nothing is extracted to disk.
"""

from __future__ import annotations

import bz2
import functools
import hashlib
import io
import lzma
import os
import posixpath
import struct
import sys
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TextIO

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
#: Bytes of LZMA properties in a zip member (lc/lp/pb, then the dictionary size).
_LZMA_PROPERTIES = 5

#: The longest line of a list of paths read whole: longer than any system's path limit (Linux
#: 4,096 bytes, Windows 32,767 characters), so a longer one cannot be a path.
_MAX_LINE = 1 << 16
#: Characters of such a line kept to name it.
_SHOWN = 200
#: Why a link out of the folder scanned is not read.
OUTSIDE_LINK = (
    "skipped: symbolic link to a file outside the scanned folder (pass --follow-links to follow it)"
)

#: Kaggle folder names -> the labels users see.
FOLDER_LABELS = {"FAKE": "ai", "REAL": "real"}
SPLITS = ("train", "test")


class ImageSource:
    """A folder or zip of files, listed by relative POSIX name. Use it as a context manager."""

    path: Path
    #: (name, reason) for what was found but will not be read, filled in as names are listed:
    #: folders that could not be listed, links out of the folder, lines of a list that cannot be
    #: paths. Reported, never skipped.
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
    """The files below a folder. Links to folders are never followed (no loops); a scan does not
    read links to files outside the folder either, unless `follow_links`: a folder from elsewhere
    could otherwise make it read (and record the size of) any file the user can."""

    def __init__(self, path: Path, *, follow_links: bool = False) -> None:
        self.path = path
        self.follow_links = follow_links
        self._names: list[str] | None = None
        self.unlisted: list[tuple[str, str]] = []

    def names(self) -> list[str]:
        """Every file below the folder, links to files followed wherever they lead (a data set
        is chosen by its owner); a folder that cannot be listed is an error."""
        if self._names is None:
            unlisted: list[tuple[str, str]] = []
            found = sorted(_walk(self.path, "", unlisted, follow_links=True))
            if unlisted:
                folder, reason = unlisted[0]
                raise DatasetLayoutError(f"{self.path / folder}: {reason}")
            self._names = found
        return self._names

    def iter_names(self, prefix: str = "") -> Iterator[str]:
        """Depth first, each folder's entries sorted by name; links to folders are not followed,
        nor folders whose files cannot start with `prefix`."""
        return _walk(self.path, prefix, self.unlisted, follow_links=self.follow_links)

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
    archives of millions; it is asked only for what that does not cover). Each member is then
    read with one positioned read, inflated here (stored, deflate, bzip2 or LZMA) to at most the
    size its directory entry declares, and checked against its CRC-32: `ZipFile.open` spends
    longer than decoding a small JPEG on Python-level header parsing, makes threads take turns
    on the archive's file lock, lets a bzip2 member inflate past its declared size in memory,
    and lets damage to one member escape as `zlib.error` or `LZMAError`. Here whatever is wrong
    with a member is an `ImageDecodeError` naming it, and the others are still read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise DatasetLayoutError(f"{path}: not a readable zip file ({exc.strerror or exc})") from None
        try:
            index = read_index(self._fd)
            self._index = index if index is not None else ZipIndex.from_infos(self._zipfile_members())
        except BaseException:
            self.close()
            raise

    def _zipfile_members(self) -> list[zipfile.ZipInfo]:
        """The members as `zipfile` reads them, for archives outside `zipindex`'s fast path."""
        try:
            with zipfile.ZipFile(self.path) as archive:
                return archive.infolist()
        except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as exc:
            raise DatasetLayoutError(f"{self.path}: not a readable zip file ({exc})") from None

    def close(self) -> None:
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
        claimed = max(member.file_size, member.compress_size)
        if claimed > MAX_FILE_BYTES:
            raise ImageDecodeError(
                self.display_name(name),
                f"zip member claims {claimed:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit",
            )
        try:
            data = _inflate(member.compress_type, self._member_data(member), member.file_size)
            if len(data) != member.file_size or zlib.crc32(data) != member.CRC:
                raise ValueError("bad CRC-32 or size: the member is damaged")
        except ValueError as exc:  # what is wrong, in words
            raise ImageDecodeError(self.display_name(name), f"cannot read zip member: {exc}") from None
        except (OSError, zlib.error, lzma.LZMAError) as exc:  # from the disk or a decompressor
            reason = f"cannot read zip member: its data is damaged or unreadable ({exc})"
            raise ImageDecodeError(self.display_name(name), reason) from None
        return data

    def _member_data(self, member: Member) -> bytes:
        """A member's stored or compressed bytes, found through its local header."""
        if member.flag_bits & _ZIP_ENCRYPTED:
            raise ValueError("it is encrypted (password-protected zips are not supported)")
        size = member.compress_size
        block = os.pread(self._fd, _LOCAL_HEADER.size + _HEADER_SLACK + size, member.header_offset)
        if len(block) < _LOCAL_HEADER.size or not block.startswith(_LOCAL_SIGNATURE):
            raise ValueError("its local header is missing or damaged")
        _, name_length, extra_length = _LOCAL_HEADER.unpack_from(block)
        start = _LOCAL_HEADER.size + name_length + extra_length
        data = block[start : start + size]
        if len(data) < size:  # an unusually long name or extra field
            data = os.pread(self._fd, size, member.header_offset + start)
        if len(data) != size:
            raise ValueError("the archive ends inside the member (truncated)")
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


def _inflate(method: int, data: bytes, size: int) -> bytes:
    """`data` decompressed by zip `method`, at most `size` + 1 bytes of it: what inflates past
    the declared size (which was checked against the limit) is not held, only seen to be wrong."""
    if method == zipfile.ZIP_STORED:
        return data
    if method == zipfile.ZIP_DEFLATED:
        return zlib.decompressobj(-zlib.MAX_WBITS).decompress(data, size + 1)
    if method == zipfile.ZIP_BZIP2:
        return bz2.BZ2Decompressor().decompress(data, size + 1)
    if method == zipfile.ZIP_LZMA:
        # A version (2 bytes), the length of the LZMA properties (2 bytes), the properties, the data.
        if len(data) < 4 or int.from_bytes(data[2:4], "little") != _LZMA_PROPERTIES:
            raise ValueError("its LZMA header is damaged")
        filters = [_lzma_filter(data[4 : 4 + _LZMA_PROPERTIES], size)]
        decompressor = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters)
        return decompressor.decompress(data[4 + _LZMA_PROPERTIES :], size + 1)
    raise ValueError(f"compression method {method} is not supported (stored, deflate, bzip2 and LZMA are)")


def _lzma_filter(properties: bytes, size: int) -> dict[str, int]:
    """The LZMA1 filter that a zip member's 5 property bytes describe. The dictionary need not
    be larger than the output (at most `size` + 1 bytes), whatever the member claims: a claim of
    4 GiB would otherwise be allocated."""
    if len(properties) != _LZMA_PROPERTIES or properties[0] >= 9 * 5 * 5:
        raise ValueError("its LZMA properties are damaged")
    pb, rest = divmod(properties[0], 9 * 5)
    lp, lc = divmod(rest, 9)
    dict_size = min(int.from_bytes(properties[1:], "little"), size + 1)
    return {"id": lzma.FILTER_LZMA1, "lc": lc, "lp": lp, "pb": pb, "dict_size": max(dict_size, 4096)}


class PathListSource(ImageSource):
    """Paths listed one per line (a text file, or standard input), each read where it is.

    Relative paths are relative to the current directory; blank lines are skipped; a `\\r`
    before the line end is dropped. The list is read as the scan goes, so it can be longer than
    memory would hold, and so can a line: one that no path could be as long as is cut short
    (see `_lines`). A line that cannot be a path (too long, or holding a NUL byte) is reported
    in `unlisted`, named with the NUL as `\\x00`.
    """

    def __init__(self, stream: TextIO, path: Path) -> None:
        self.path = path
        self._stream = stream
        self.unlisted: list[tuple[str, str]] = []

    def iter_names(self, prefix: str = "") -> Iterator[str]:
        for number, name, length in _lines(self._stream):
            if not name.strip() or not name.startswith(prefix):
                continue
            if length <= _MAX_LINE and "\0" not in name:
                yield name
                continue
            where = f"line {number:,} of {self.path}"
            if length > _MAX_LINE:
                shown, reason = f"{name[:_SHOWN]}...", f"{where} is {length:,} characters: no path is so long"
            else:
                shown, reason = name, f"{where} holds a NUL byte, which no path can"
            self.unlisted.append((shown.replace("\0", "\\x00"), reason))

    def names(self) -> list[str]:
        return sorted(self.iter_names())

    def read(self, name: str) -> bytes:
        return read_file_bytes(name)

    def stat(self, name: str) -> tuple[str, str]:
        return _file_stat(name)

    def display_name(self, name: str) -> str:
        return name

    def close(self) -> None:
        if self._stream is not sys.stdin:
            self._stream.close()


def _lines(stream: TextIO) -> Iterator[tuple[int, str, int]]:
    """(line number, text without its line end, length in characters) of each line. A line over
    `_MAX_LINE` characters keeps only that many, the rest read and dropped, so no line costs more
    memory than a path could need."""
    number = 0
    while line := stream.readline(_MAX_LINE + 1):
        number += 1
        length = len(line)
        chunk = line
        while not chunk.endswith("\n") and (chunk := stream.readline(_MAX_LINE)):
            length += len(chunk)
        yield number, line[:_MAX_LINE].rstrip("\r\n"), length - chunk.endswith("\n")


def _walk(root: Path, wanted: str, unlisted: list[tuple[str, str]], *, follow_links: bool) -> Iterator[str]:
    """Files below `root` whose names start with `wanted`, depth first, each folder's entries
    sorted by name. A stack of listings, not recursion, so any depth is walked. Links to folders
    are not followed; links to files outside `root` only with `follow_links`, else those with
    image names go to `unlisted` (the rest would not be read anyway)."""
    outside = None if follow_links else _outside(root)
    stack = [_listing(root, "", unlisted)]
    while stack:
        name, entry = next(stack[-1], ("", None))
        if entry is None:
            stack.pop()
        elif _is_dir(entry):
            if not entry.is_symlink() and (name.startswith(wanted) or wanted.startswith(f"{name}/")):
                stack.append(_listing(root, f"{name}/", unlisted))
        elif name.startswith(wanted):
            if outside is None or not entry.is_symlink() or not outside(entry.path):
                yield name
            elif is_image_name(name):
                unlisted.append((name, OUTSIDE_LINK))


def _listing(root: Path, folder: str, unlisted: list[tuple[str, str]]) -> Iterator[tuple[str, os.DirEntry]]:
    """(name, entry) for each entry of `root / folder`, sorted by name; read at once, so no
    folder stays open while its subfolders are walked. A folder that cannot be listed goes to
    `unlisted`; the folder scanned itself is an error."""
    try:
        entries = sorted(os.scandir(root / folder), key=lambda entry: entry.name)
    except OSError as exc:
        if not folder:
            _refuse_unlistable(exc)
        unlisted.append((folder, f"cannot list this folder: {exc.strerror or exc}"))
        return iter(())
    return ((f"{folder}{entry.name}", entry) for entry in entries)


def _outside(root: Path) -> Callable[[str], bool]:
    """A test for paths that lead out of `root` once every link is resolved."""
    inside = os.path.join(os.path.realpath(root), "")
    return lambda path: not os.path.realpath(path).startswith(inside)


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


def open_input(spec: str | os.PathLike[str], *, follow_links: bool = False) -> ImageSource:
    """What `fakelens scan` reads: `-` (paths on standard input), `@FILE` (paths listed in FILE,
    one per line), a filesystem URI (`data.uris`), or a folder or zip (`open_source`)."""
    text = os.fspath(spec)
    if is_uri(text):
        from fakelens.data.uris import UriSource

        return UriSource(text)
    if text == "-":
        if isinstance(sys.stdin, io.TextIOWrapper):  # file names need not be UTF-8: keep their bytes
            sys.stdin.reconfigure(errors="surrogateescape", newline="\n")
        return PathListSource(sys.stdin, Path("<stdin>"))
    if text.startswith("@") and not Path(text).exists():
        path = Path(text[1:])
        try:
            # Lines end at "\n" only, as on standard input: "\r" can be part of a file name.
            stream = open(path, encoding="utf-8", errors="surrogateescape", newline="\n")
            return PathListSource(stream, path)
        except OSError as exc:
            reason = exc.strerror or exc
            raise DatasetLayoutError(f"{path}: cannot read the list of paths ({reason})") from None
    return open_source(text, follow_links=follow_links)


def open_source(path: str | os.PathLike[str], *, follow_links: bool = False) -> ImageSource:
    """Open a folder or a zip file as an image source; see `FolderSource` for `follow_links`."""
    path = Path(path)
    if path.is_dir():
        return FolderSource(path, follow_links=follow_links)
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


def is_uri(name: str) -> bool:
    """A filesystem URI (`s3://...`, `file:///...`) rather than a local path."""
    return "://" in name


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
    """Reads files by the names results show (`display_name`): a file, a member of a zip whose
    path leads the name (`data.zip/test/FAKE/1.jpg`), or a URI. Each zip is opened once; use it
    as a context manager."""

    def __init__(self) -> None:
        self._zips: dict[Path, ZipSource] = {}

    def __enter__(self) -> DisplayNameReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for source in self._zips.values():
            source.close()

    def read(self, name: str) -> bytes:
        if is_uri(name):
            from fakelens.data.uris import read_uri

            return read_uri(name)
        # A name under a zip already opened needs no look at the disk (a scan reads millions).
        for source in self._zips.values():
            prefix = source.display_name("")
            if name.startswith(prefix):
                return source.read(name[len(prefix) :])
        try:
            return self._read_path(name)
        except OSError as exc:  # a name no path can be (too long, say): that row's problem
            raise ImageDecodeError(name, f"not readable any more: {exc.strerror or exc}") from None

    def _read_path(self, name: str) -> bytes:
        path = Path(name)
        if path.is_file():
            return read_file_bytes(path)
        for archive in path.parents:
            if archive in self._zips or (archive.is_file() and zipfile.is_zipfile(archive)):
                if archive not in self._zips:
                    try:
                        self._zips[archive] = ZipSource(archive)
                    except DatasetLayoutError as exc:  # one row's problem, not the caller's
                        raise ImageDecodeError(name, str(exc)) from None
                return self._zips[archive].read(path.relative_to(archive).as_posix())
            if archive.is_file():
                break
        raise ImageDecodeError(name, "not readable any more: no such file, nor a member of a zip")
