"""A zip's member table, read from its central directory with numpy instead of one Python object
per member.

`zipfile.ZipFile` builds a `ZipInfo` per member on opening: 1.4 s for CIFAKE's 120,006 members,
longer than scanning 5,000 of them, and ~11 s and hundreds of MB per million. Here the central
directory is read in one call, its record signatures found in one pass, and the records' fields
gathered as arrays; only the names become Python objects (decoded in one call). Anything this
fast path does not cover (members needing ZIP64 extra fields, data prepended to the archive,
several disks, names holding a NUL, a damaged directory) returns None, and the caller falls back
to `zipfile`, which handles or words every case.

A name flagged UTF-8 that is not UTF-8, on which `zipfile` gives up on the whole archive, keeps its
bytes here as surrogate escapes (as Python does for file names that are not UTF-8), so the other
members are still read and the odd one is named, with `\\xNN` for those bytes, where it is shown.
"""

from __future__ import annotations

import os
import re
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END_SIGNATURE = b"PK\x05\x06"
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_END64 = struct.Struct("<4sQ2H2L4Q")
_END64_SIGNATURE = b"PK\x06\x06"
_CENTRAL_SIGNATURE = re.compile(re.escape(b"PK\x01\x02"))
#: Records gathered at a time: bounds the temporary index arrays for archives of millions.
_CHUNK = 1 << 16
#: The longest archive comment, hence how far from the end the end record can sit.
_MAX_COMMENT = 0xFFFF
#: General-purpose flag bit 11: the name is UTF-8 (otherwise code page 437).
_UTF8_NAME = 0x800


class Member(NamedTuple):
    """What reading and describing one member needs, as `zipfile.ZipInfo` names it."""

    flag_bits: int
    compress_type: int
    CRC: int
    compress_size: int
    file_size: int
    header_offset: int
    dos_date: int
    dos_time: int

    @property
    def date_time(self) -> tuple[int, int, int, int, int, int]:
        """As ZipInfo.date_time: the MS-DOS date and time fields, two-second resolution (worked
        out only when asked: reading a member does not need it)."""
        date, time = self.dos_date, self.dos_time
        day = ((date >> 9) + 1980, (date >> 5) & 0xF, date & 0x1F)
        return (*day, time >> 11, (time >> 5) & 0x3F, (time & 0x1F) * 2)


#: The fields used of a central directory file header (46 bytes, from its signature on).
_CENTRAL_RECORD = np.dtype(
    {
        "names": [
            "flag_bits",
            "compress_type",
            "dos_time",
            "dos_date",
            "crc",
            "compress_size",
            "file_size",
            "name_length",
            "extra_length",
            "comment_length",
            "header_offset",
        ],
        "formats": ["<u2", "<u2", "<u2", "<u2", "<u4", "<u4", "<u4", "<u2", "<u2", "<u2", "<u4"],
        "offsets": [8, 10, 12, 14, 16, 20, 24, 28, 30, 32, 42],
        "itemsize": 46,
    }
)

#: The same fields, 64 bits wide, for what `zipfile` read.
_WIDE_RECORD = np.dtype([(name, "<u8") for name in _CENTRAL_RECORD.names])


@dataclass(frozen=True)
class ZipIndex:
    """Every member by name (the last one where a name repeats, as `zipfile` does), and the
    central-directory records, by position."""

    positions: dict[str, int]
    records: np.ndarray

    def __len__(self) -> int:
        return len(self.positions)

    def get(self, name: str) -> Member | None:
        at = self.positions.get(name)
        if at is None:
            return None
        flags, method, time, date, crc, compressed, size, _, _, _, offset = self.records.item(at)
        return Member(flags, method, crc, compressed, size, offset, date, time)

    @classmethod
    def from_infos(cls, infos: Sequence[zipfile.ZipInfo]) -> ZipIndex:
        """The same table from `zipfile`'s members (the fallback path)."""
        # Not `is_dir()`, which fails on an empty name (one that starts with a NUL, cut there).
        infos = [info for info in infos if not info.filename.endswith("/")]
        records = np.zeros(len(infos), _WIDE_RECORD)  # ZIP64 sizes and offsets need 64 bits
        for at, info in enumerate(infos):
            year, month, day, hour, minute, second = info.date_time
            records[at] = (
                info.flag_bits,
                info.compress_type,
                hour << 11 | minute << 5 | second // 2,
                (year - 1980) << 9 | month << 5 | day,
                info.CRC,
                info.compress_size,
                info.file_size,
                0,
                0,
                0,
                info.header_offset,
            )
        return cls({info.filename: at for at, info in enumerate(infos)}, records)


def read_index(fd: int) -> ZipIndex | None:
    """The member table of the zip open as `fd`, folders left out; None where `zipfile` must
    read it instead (see the module docstring)."""
    try:
        found = _central_directory(fd)
        if found is None:
            return None
        data, count = found
        return _parse(data, count)
    except (OSError, struct.error, ValueError):
        return None


def _central_directory(fd: int) -> tuple[bytes, int] | None:
    """The central directory's bytes and member count, if the archive is the simple kind: one
    disk, nothing prepended, an end record that its comment length confirms."""
    size = os.fstat(fd).st_size
    tail_start = max(0, size - _END.size - _MAX_COMMENT)
    tail = os.pread(fd, size - tail_start, tail_start)
    at = tail.rfind(_END_SIGNATURE)
    if at < 0 or len(tail) - at < _END.size:
        return None
    _, disk, cd_disk, _, count, cd_size, cd_offset, comment_length = _END.unpack_from(tail, at)
    if disk or cd_disk or at + _END.size + comment_length != len(tail):
        return None
    end_position = tail_start + at
    locator_at = at - _END64_LOCATOR.size
    if locator_at >= 0 and tail.startswith(_END64_LOCATOR_SIGNATURE, locator_at):  # ZIP64, as zipfile
        _, _, end64_position, disks = _END64_LOCATOR.unpack_from(tail, locator_at)
        record = os.pread(fd, _END64.size, end64_position)
        if disks > 1 or len(record) < _END64.size:
            return None
        signature, _, _, _, disk, cd_disk, _, count, cd_size, cd_offset = _END64.unpack(record)
        if signature != _END64_SIGNATURE or disk or cd_disk:
            return None
        end_position = end64_position
    if cd_offset + cd_size != end_position:  # data prepended to the archive, or damage
        return None
    data = os.pread(fd, cd_size, cd_offset)
    return (data, count) if len(data) == cd_size else None


def _parse(data: bytes, count: int) -> ZipIndex | None:
    """The table, if the directory holds exactly `count` record signatures and each record's
    length agrees with its own name, extra and comment lengths.

    Records are gathered `_CHUNK` at a time, so the index arrays stay small for any archive.
    """
    starts = np.fromiter((match.start() for match in _CENTRAL_SIGNATURE.finditer(data)), np.int64)
    if len(starts) != count or (count and starts[0] != 0):  # a signature inside a name or field
        return None
    lengths = np.diff(starts, append=len(data))
    size = _CENTRAL_RECORD.itemsize
    if count and lengths.min() < size:
        return None
    buffer = np.frombuffer(data, np.uint8)
    records = np.empty(count, _CENTRAL_RECORD)
    raw = records.view(np.uint8).reshape(count, size)
    names: list[str] = []
    for chunk in (slice(low, low + _CHUNK) for low in range(0, count, _CHUNK)):
        raw[chunk] = buffer[starts[chunk, None] + np.arange(size)]
        part = _names(
            buffer,
            starts[chunk] + size,
            records["name_length"][chunk].astype(np.int64),
            records["flag_bits"][chunk] & _UTF8_NAME != 0,
        )
        if part is None:
            return None
        names += part
    name_length = records["name_length"].astype(np.int64)
    if not np.array_equal(lengths, size + name_length + records["extra_length"] + records["comment_length"]):
        return None
    sizes = (records["compress_size"], records["file_size"], records["header_offset"])
    if any((column == 0xFFFFFFFF).any() for column in sizes):
        return None  # sizes or offsets in ZIP64 extra fields
    positions = dict(zip(names, range(count)))
    last_bytes = buffer[np.minimum(starts + size + name_length - 1, len(buffer) - 1)]
    for at in np.flatnonzero((name_length > 0) & (last_bytes == ord("/"))).tolist():
        positions.pop(names[at], None)  # folders
    return ZipIndex(positions, records)


def _names(buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray, utf8: np.ndarray) -> list[str] | None:
    """Member names decoded as `zipfile` decodes them (UTF-8 when flagged, else code page 437),
    bytes of a flagged name that are not UTF-8 kept as surrogate escapes; None if one holds a
    NUL, which `zipfile` would cut short.

    The names are gathered into one buffer, each followed by a NUL, and decoded at once.
    """
    with_separator = lengths + 1
    ends = np.cumsum(with_separator)
    offsets = np.repeat(starts - (ends - with_separator), with_separator)
    # Each name's separator is gathered from the byte after it (never past the end), then zeroed.
    joined = buffer[np.minimum(np.arange(len(offsets)) + offsets, len(buffer) - 1)]
    joined[ends - 1] = 0
    text = joined.tobytes()
    if text.count(b"\0") != len(starts):
        return None
    if text.isascii() or utf8.all():  # ASCII reads the same in both
        return text.decode("utf-8", "surrogateescape").split("\0")[:-1]
    return [
        name.decode("utf-8", "surrogateescape") if flagged else name.decode("cp437")
        for name, flagged in zip(text.split(b"\0")[:-1], utf8.tolist())
    ]
