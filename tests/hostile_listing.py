"""Hostile inputs for the listing layer, made in code (nothing binary is committed): zip members
that will not inflate, zip names that are not what their flags say, lists of paths holding NUL
bytes or huge lines, folders nested past Python's recursion limit or PATH_MAX, and links that
lead out of the folder scanned.

Each class has a function returning named cases. `outcome` is None where the entry must be
judged, else a regex its row's error must match.
"""

from __future__ import annotations

import bz2
import contextlib
import lzma
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from conftest import encode, random_image

DAMAGED = "cannot read zip member: its data is damaged"
BAD_CHECK = "bad CRC-32 or size"
NUL_LINE = r"line \d+ of .* holds a NUL byte"
TOO_LONG = "File name too long"
OUTSIDE = "skipped: symbolic link to a file outside the scanned folder"

_LOCAL = struct.Struct("<4s5H3L2H")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_END = struct.Struct("<4s4H2LH")
#: General-purpose flag bits: encrypted, name in UTF-8.
ENCRYPTED, UTF8 = 0x1, 0x800
STORED, DEFLATED, BZIP2, LZMA = 0, 8, 12, 14
#: zip LZMA properties: lc=3, lp=0, pb=2, a 64 KiB dictionary.
_LZMA_FILTER = {"id": lzma.FILTER_LZMA1, "lc": 3, "lp": 0, "pb": 2, "dict_size": 1 << 16}


def jpeg(seed: int) -> bytes:
    return encode(random_image(seed))


@dataclass(frozen=True)
class Member:
    """One zip member exactly as written: `data` is what the archive holds (already compressed);
    `size` and `crc` are what the directory declares (default: those of `content`)."""

    name: bytes
    content: bytes
    method: int = STORED
    data: bytes | None = None
    flags: int = 0
    size: int | None = None
    crc: int | None = None
    outcome: str | None = None


def compress(method: int, content: bytes) -> bytes:
    """`content` as a zip member of `method` holds it (LZMA with its 4-byte header and properties)."""
    if method == DEFLATED:
        packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        return packer.compress(content) + packer.flush()
    if method == BZIP2:
        return bz2.compress(content)
    if method == LZMA:
        properties = bytes([(2 * 5 + 0) * 9 + 3]) + (1 << 16).to_bytes(4, "little")
        packed = lzma.compress(content, lzma.FORMAT_RAW, filters=[_LZMA_FILTER])
        return b"\x09\x14\x05\x00" + properties + packed
    return content


def member(name: str | bytes, content: bytes, method: int = STORED, **fields) -> Member:
    raw = name.encode() if isinstance(name, str) else name
    return Member(raw, content, method, data=fields.pop("data", compress(method, content)), **fields)


def zip_bytes(members: list[Member]) -> bytes:
    """An archive written byte by byte: names, flags, methods, sizes and CRCs as given, which
    `zipfile` would encode or check."""
    body, directory = bytearray(), bytearray()
    for item in members:
        size = len(item.content) if item.size is None else item.size
        crc = zlib.crc32(item.content) if item.crc is None else item.crc
        fields = (item.flags, item.method, 0, 0x21, crc, len(item.data), size, len(item.name))
        directory += _CENTRAL.pack(b"PK\x01\x02", 20, 20, *fields, 0, 0, 0, 0, 0, len(body)) + item.name
        body += _LOCAL.pack(b"PK\x03\x04", 20, *fields, 0) + item.name + item.data
    end = _END.pack(b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), len(body), 0)
    return bytes(body + directory + end)


def good_members() -> list[Member]:
    """A JPEG in every method the reader supports: each must be judged."""
    return [
        member(f"good/{kind}.jpg", jpeg(seed), method)
        for seed, (kind, method) in enumerate(
            [("stored", STORED), ("deflated", DEFLATED), ("bzip2", BZIP2), ("lzma", LZMA)]
        )
    ]


def broken_members() -> list[Member]:
    """Class 2: members that fail to inflate or to check out, each on its own."""
    image = jpeg(10)
    deflated, lzmaed = compress(DEFLATED, image), compress(LZMA, image)
    huge_dictionary = lzmaed[:5] + b"\xff\xff\xff\xff" + lzmaed[9:]
    bomb = bytes(64 << 20)  # 64 MiB of zeros: about 64 KiB deflated, 50 bytes in bzip2
    return [
        member("deflate-invalid-block.jpg", image, DEFLATED, data=b"\xff" + deflated[1:], outcome=DAMAGED),
        member("deflate-truncated.jpg", image, DEFLATED, data=deflated[:100], outcome=BAD_CHECK),
        member("deflate-bomb.jpg", image, DEFLATED, data=compress(DEFLATED, bomb), outcome=BAD_CHECK),
        member("bzip2-garbage.jpg", image, BZIP2, data=b"BZh9" + bytes(200), outcome=DAMAGED),
        member("bzip2-bomb.jpg", image, BZIP2, data=compress(BZIP2, bomb), outcome=BAD_CHECK),
        member("lzma-corrupt.jpg", image, LZMA, data=lzmaed[:9] + b"\xff" * 64, outcome=DAMAGED),
        member(
            "lzma-bad-props.jpg", image, LZMA, data=lzmaed[:4] + b"\xff" + lzmaed[5:], outcome="LZMA prop"
        ),
        member("lzma-short-header.jpg", image, LZMA, data=b"\x09", outcome="LZMA header"),
        member("lzma-4gib-dictionary.jpg", image, LZMA, data=huge_dictionary),  # judged: bounded
        member("deflate64.jpg", image, 9, outcome="compression method 9 is not supported"),
        member("aes.jpg", image, 99, outcome="compression method 99 is not supported"),
        member("encrypted.jpg", image, DEFLATED, flags=ENCRYPTED, outcome="encrypted"),
        member("stored-bad-crc.jpg", image, crc=zlib.crc32(image) ^ 1, outcome=BAD_CHECK),
        member("deflate-bad-crc.jpg", image, DEFLATED, crc=zlib.crc32(image) ^ 1, outcome=BAD_CHECK),
        member("size-over-limit.jpg", image, DEFLATED, size=1 << 31, outcome="over the .*-byte limit"),
    ]


def odd_names() -> list[Member]:
    """Class 3: names whose bytes disagree with their UTF-8 flag, and one in code page 437: each
    must be judged; `shown_names` says how results name them."""
    return [member(raw, jpeg(20 + i), flags=flags) for i, (raw, flags, _) in enumerate(_NAMES)]


#: (raw name, flags, the name results show).
_NAMES = [
    (b"flagged-latin1-\xe9.jpg", UTF8, r"flagged-latin1-\xe9.jpg"),
    (b"flagged-\xff\xfe.jpg", UTF8, r"flagged-\xff\xfe.jpg"),
    (b"overlong-slash-\xc0\xaf.jpg", UTF8, r"overlong-slash-\xc0\xaf.jpg"),
    (b"encoded-surrogate-\xed\xa0\x80.jpg", UTF8, r"encoded-surrogate-\xed\xa0\x80.jpg"),
    (b"truncated-\xe2\x82.jpg", UTF8, r"truncated-\xe2\x82.jpg"),
    (b"real-utf8-\xc3\xa9.jpg", UTF8, "real-utf8-é.jpg"),
    (b"cp437-\x80\x81.jpg", 0, "cp437-Çü.jpg"),
]


def shown_names() -> list[str]:
    """How each of `odd_names` is named in results, in the same order."""
    return [shown for _, _, shown in _NAMES]


#: The list cases whose line is reported as it is listed (the others are listed, then read).
REPORTED_LINES = ("nul-inside", "nul-only", "nul-and-latin1", "ten-mb-line")


def path_lists(folder: Path) -> dict[str, tuple[bytes, str | None]]:
    """Class 4: lines of a list of paths, by case name: (line, outcome). The good files are
    written into `folder`: one with a carriage return inside its name, one not UTF-8, one listed
    with a Windows line end."""
    files = {
        "plain": b"plain.jpg",
        "cr-inside": b"c\rr.jpg",
        "latin1": b"latin1-\xe9.jpg",
        "crlf-ended": b"crlf.jpg",
    }
    for seed, raw in enumerate(files.values()):
        (folder / os.fsdecode(raw)).write_bytes(jpeg(30 + seed))
    base = os.fsencode(folder) + b"/"
    cases: dict[str, tuple[bytes, str | None]] = {name: (base + raw, None) for name, raw in files.items()}
    cases["crlf-ended"] = (base + b"crlf.jpg\r", None)
    cases["nul-inside"] = (base + b"pla\x00in.jpg", NUL_LINE)
    cases["nul-only"] = (b"\x00", NUL_LINE)
    cases["nul-and-latin1"] = (b"\xff\x00\xfe.jpg", NUL_LINE)
    cases["ten-mb-line"] = (b"x" * (10 << 20) + b".jpg", "10,485,764 characters: no path is so long")
    cases["over-path-max"] = (base + b"d/" * 3000 + b"x.jpg", TOO_LONG)
    cases["missing"] = (base + b"missing.jpg", "file not found")
    return cases


#: Linux's PATH_MAX: the longest path the kernel takes, its terminating NUL included.
PATH_MAX = 4096


def deep_folder(root: Path, depth: int, name: str = "d", file: str = "bottom.jpg") -> str:
    """`depth` nested folders below `root`, made relative to each other's descriptors (so paths
    past PATH_MAX can be made), with an image `file` at the bottom; its name relative to `root`."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            with contextlib.suppress(FileExistsError):  # trees may share their top
                os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        image = os.open(file, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(image, jpeg(40))
        os.close(image)
    finally:
        os.close(fd)
    return f"{name}/" * depth + file


def deep_folders(root: Path) -> dict[str, str | None]:
    """Class 5: names (relative to `root`; a folder's ends with "/") and outcomes: an image
    1,100 folders down, judged; the first folder whose path passes PATH_MAX, reported; a file
    in the folder above it, whose own path passes PATH_MAX, reported."""
    (root / "deep").mkdir()
    (root / "long").mkdir()
    bottom = deep_folder(root / "deep", 1100)
    folder, file = "L" * 250, "F" * 250 + ".jpg"
    reachable = (PATH_MAX - 1 - len(os.fsencode(root / "long"))) // (len(folder) + 1)  # folders deep
    deep_folder(root / "long", reachable, folder, file)
    deep_folder(root / "long", reachable + 2, folder)
    above = f"long/{f'{folder}/' * reachable}"
    return {
        f"deep/{bottom}": None,
        f"{above}{file}": TOO_LONG,
        f"{above}{folder}/": f"cannot list this folder: {TOO_LONG}",
    }


def outside_links(root: Path, elsewhere: Path) -> dict[str, str | None]:
    """The symlink item: links below `root`, by name, and their outcome without --follow-links.
    `elsewhere` (outside `root`) gets a real image for links to lead to."""
    (root / "in").mkdir()
    (root / "in" / "real.jpg").write_bytes(jpeg(50))
    (elsewhere / "secret.jpg").write_bytes(jpeg(51))
    links = {
        "passwd.jpg": ("/etc/passwd", OUTSIDE),
        "secret.jpg": (str(elsewhere / "secret.jpg"), OUTSIDE),
        "up-and-out.jpg": (os.path.relpath(elsewhere / "secret.jpg", root), OUTSIDE),
        "via-inner-link.jpg": ("in/out.jpg", OUTSIDE),  # a chain: inside, then out
        "in/out.jpg": (str(elsewhere / "secret.jpg"), OUTSIDE),
        "relative-inside.jpg": ("in/real.jpg", None),
        "absolute-inside.jpg": (str(root / "in" / "real.jpg"), None),
        "folder-out": (str(elsewhere), None),  # a link to a folder: not followed, not listed
        "notes.txt": ("/etc/hostname", None),  # not an image: never read, not reported
    }
    for name, (target, _) in links.items():
        os.symlink(target, root / name)
    return {name: outcome for name, (_, outcome) in links.items() if name not in ("folder-out", "notes.txt")}


def remove_tree(top: Path) -> None:
    """Remove a folder of any depth or path length: `shutil.rmtree` (and so pytest's clean-up)
    recurses and fails past about 1,000 levels. Each subfolder is first moved up to `top`, so
    no path grows long."""
    pending, moved = [top], 0
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as listing:
            entries = list(listing)
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                os.unlink(entry.path)
            elif folder == top:
                pending.append(Path(entry.path))
            else:
                moved += 1
                pending.append(top / f"moved-{moved}")
                os.rename(entry.path, pending[-1])
        if folder != top:
            os.rmdir(folder)
    os.rmdir(top)
