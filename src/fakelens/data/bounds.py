"""Bounds on the time and memory that decoding one untrusted image may take, checked first.

Time. Pillow parses the headers of JPEG, PNG and GIF files in Python, one marker, chunk or
block at a time (about a microsecond each), and libjpeg decodes every scan of a progressive JPEG
over the whole image: a 726 KB JPEG of 20,000 scans took six minutes. `check_structure` walks a
file's markers, chunks or blocks at C speed (regular expressions and lengths, stopping at the
first limit) and refuses files with far more of them than real images have.

Memory. A 37-byte GIF can declare a 10,000 x 10,000 canvas. `decode_bytes` estimates the peak
memory of decoding an image from its header; `MEMORY.reserve` refuses an image over
`MAX_DECODE_BYTES` and lets the decodes of one process run together only while their estimates
fit that budget together, then hands the freed memory back to the operating system.
"""

from __future__ import annotations

import re
import struct
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from itertools import islice

from PIL import Image

from fakelens.config import MAX_DECODE_BYTES
from fakelens.errors import ImageDecodeError
from fakelens.heap import release_memory

#: Scans of one JPEG. libjpeg's progressive script writes 10 (6 for grey), and every scan costs a
#: pass over all the blocks of its components, however few bytes it holds.
MAX_JPEG_SCANS = 500
#: Scans x pixels of one JPEG: a scan of a 100-megapixel image takes up to 0.1 s here (a 4:4:4
#: DC scan; 0.05 s for a luma AC scan of 4:2:0), so decoding scans stays under about 2.5 s (twice
#: that when simplejpeg fails and Pillow decodes again): 25 scans at 100 MP, 208 at 12 MP.
MAX_JPEG_SCAN_PIXELS = 2_500_000_000
#: Marker segments of one JPEG: a camera's file has about 20, and at most 64 KB each; a file at
#: the size limit holds at most 4,100 full ones.
MAX_JPEG_SEGMENTS = 10_000
#: Junk and fill bytes between the header's markers, which Pillow steps over one at a time.
MAX_JPEG_JUNK_BYTES = 1 << 20
#: A JPEG this small with one SOS marker cannot hold enough segments or junk to matter (16,000 at
#: most: milliseconds for Pillow): its walk ends at the frame header, halving it for small images.
_SMALL_JPEG_BYTES = 1 << 16
#: Chunks of one PNG: libpng writes 8 KB IDAT chunks (32,000 in a 256 MB file); a row per chunk
#: gives one per row.
MAX_PNG_CHUNKS = 200_000
#: Extension blocks, data sub-blocks and stray bytes before a GIF's first image; an XMP packet
#: of 1 MB takes about 15,000.
MAX_GIF_BLOCKS = 100_000
#: Pixels of a run-length encoded BMP: Pillow decodes those in Python, up to 0.3 us a pixel.
MAX_RLE_BMP_PIXELS = 8_000_000
#: Numbers in the tags of a TIFF's first IFD and its Exif, GPS and Interop IFDs, which Pillow
#: turns into Python objects when it loads the image (0.1 us each; a rational, an object of its
#: own, counts as 32: 4 us). Strip and tile offsets of a 100-megapixel image are under 800,000.
MAX_TIFF_VALUES = 2_000_000
#: Strips or tiles of an uncompressed TIFF: Pillow decodes each as a tile of its own (11 us).
MAX_TIFF_STRIPS = 100_000
#: Entries of one IFD, which Pillow reads one at a time (2 us): the most a classic TIFF can hold;
#: a BigTIFF could claim millions.
MAX_TIFF_ENTRIES = 65_535
#: Decodes estimated at this many bytes or more hold memory from the shared budget and trim the
#: heap when done; smaller ones run freely.
LARGE_DECODE_BYTES = 32 << 20
#: The RGB conversion's tiles (`decode.to_rgb_array`) and the decoders' working buffers: measured
#: peaks on 100-megapixel PNGs are 20-50 MiB above the pixels' estimate. An image smaller than a
#: tile takes a few copies of itself (32 bytes a pixel) instead.
CONVERSION_BYTES = 64 << 20

#: A JPEG marker: 0xFF and a byte that is neither stuffing (0x00), a restart marker (both in
#: entropy-coded data) nor more fill (0xFF).
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_NOT_JPEG_MARKERS = frozenset({0x00, 0xFF, *range(0xD0, 0xD8)})
_JPEG_SOF = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0)})
_JPEG_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_JPEG_EOI, _JPEG_SOS = 0xD9, 0xDA
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHUNK = struct.Struct(">I4s")
#: What one value of each TIFF field type costs Pillow: integers and floats 1, rationals 32;
#: bytes and text (types 1, 2, 7) stay one bytes object.
_TIFF_COST = {3: 1, 4: 1, 6: 1, 8: 1, 9: 1, 11: 1, 12: 1, 13: 1, 16: 1, 17: 1, 18: 1, 5: 32, 10: 32}
#: Bytes of one TIFF value of each type where not 4: a value held in the entry is left-justified.
_TIFF_WIDTH = {3: 2, 16: 8, 17: 8, 18: 8}
#: Tags pointing to the Exif, GPS and Interop IFDs, which Pillow loads with the image.
_TIFF_SUB_IFDS = (34665, 34853, 40965)
_GIF_BLOCK = re.compile(rb"[!,;]")


def check_structure(raw: bytes, label: str) -> int:
    """Refuse `raw` (an `ImageDecodeError` naming `label`) when its markers, chunks or blocks would
    take too long to parse or decode. Returns the memory a decoder keeps beyond the image for
    this structure: the whole-image buffer of DCT coefficients (2 bytes each, 64 a block) of a
    progressive or multi-scan JPEG, at any output scale; else 0."""
    if raw.startswith(b"\xff\xd8"):
        return _check_jpeg(raw, label)
    if raw.startswith(PNG_SIGNATURE):
        _check_png(raw, label)
    elif raw.startswith((b"GIF87a", b"GIF89a")):
        _check_gif(raw, label)
    elif raw.startswith(b"BM"):
        _check_bmp(raw, label)
    elif raw[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        _check_tiff(raw, label)
    return 0


def _too_slow(label: str, what: str) -> ImageDecodeError:
    return ImageDecodeError(label, f"{what}; refused: it would take too long to decode")


def _check_jpeg(raw: bytes, label: str) -> int:
    """Walk the markers (skipping segments by their lengths, and entropy-coded data to its next
    marker) up to the end of the first image. After the first scan, what libjpeg reads (in C)
    needs walking only when the file holds more SOS markers (FF DA, which entropy-coded data
    cannot hold) than the scan limit."""
    pos, junk, segments, scans, size = 2, 0, 0, 0, len(raw)
    small = size <= _SMALL_JPEG_BYTES and raw.count(b"\xff\xda") <= 1
    frame = b""  # the first frame header's body
    progressive = False
    limit = MAX_JPEG_SCANS
    while True:
        if pos + 1 < size and raw[pos] == 0xFF and raw[pos + 1] not in _NOT_JPEG_MARKERS:
            start = pos  # the usual case in the header: segments back to back
        else:  # after a scan's header: entropy-coded data; before the first scan: junk
            end = size if scans else min(size, pos + MAX_JPEG_JUNK_BYTES + 2)
            match = _JPEG_MARKER.search(raw, pos, end)
            if not scans:
                junk += (match.start() if match else end) - pos
                if junk > MAX_JPEG_JUNK_BYTES:
                    raise _too_slow(
                        label, f"JPEG with over {MAX_JPEG_JUNK_BYTES:,} junk bytes between markers"
                    )
            if match is None:
                break
            start = match.start()
        marker, pos = raw[start + 1], start + 2
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise _too_slow(label, f"JPEG with over {MAX_JPEG_SEGMENTS:,} marker segments")
        if marker == _JPEG_EOI:
            break
        if marker in (0x01, 0xD8):  # TEM, SOI: no length
            continue
        length = max(2, int.from_bytes(raw[pos : pos + 2], "big"))
        if marker == _JPEG_SOS:
            scans += 1
            if scans > limit:
                at = " at {}x{}".format(*_jpeg_size(frame)) if frame else ""
                raise _too_slow(label, f"JPEG with over {limit:,} scans{at} (real ones have about 10)")
            if scans == 1 and (later := raw.count(b"\xff\xda", pos)) < limit:
                scans += later
                break
        elif marker in _JPEG_SOF and not frame:
            frame = raw[pos + 2 : pos + length]
            progressive = marker in _JPEG_PROGRESSIVE
            if small:
                break
            width, height = _jpeg_size(frame)
            limit = min(MAX_JPEG_SCANS, max(1, MAX_JPEG_SCAN_PIXELS // max(1, width * height)))
        pos += length
    return _jpeg_coefficient_bytes(frame) if progressive or scans > 1 else 0


def _jpeg_size(frame: bytes) -> tuple[int, int]:
    """Width and height from a frame header (SOFn) body; 0 where it is cut short."""
    return int.from_bytes(frame[3:5], "big"), int.from_bytes(frame[1:3], "big")


def _jpeg_coefficient_bytes(frame: bytes) -> int:
    """The coefficient buffer's size for a frame header body: the blocks of every component,
    rounded up to whole MCUs as libjpeg stores them; 0 for a header cut short."""
    if len(frame) < 6:
        return 0
    width, height = _jpeg_size(frame)
    factors = [(frame[i] >> 4, frame[i] & 15) for i in range(7, min(len(frame), 6 + 3 * frame[5]), 3)]
    if not factors or min(min(f) for f in factors) < 1:
        return 0
    h_max, v_max = max(h for h, _ in factors), max(v for _, v in factors)
    blocks = 0
    for h, v in factors:
        across = _round_up(-(-width * h // (8 * h_max)), h)
        down = _round_up(-(-height * v // (8 * v_max)), v)
        blocks += across * down
    return blocks * 128


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def png_chunks(raw: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(type, start, end) of the data of each chunk of a PNG before IEND, ending early at a chunk
    that runs past the end of the file: the one walk that the checks, the decoder and the
    metadata reader share. The caller bounds how many it takes."""
    at = len(PNG_SIGNATURE)
    while at + _PNG_CHUNK.size <= len(raw):
        length, kind = _PNG_CHUNK.unpack_from(raw, at)
        start, at = at + _PNG_CHUNK.size, at + _PNG_CHUNK.size + length + 4  # then its CRC
        if kind == b"IEND" or at > len(raw):
            return
        yield kind, start, at - 4


def _check_png(raw: bytes, label: str) -> None:
    if next(islice(png_chunks(raw), MAX_PNG_CHUNKS, None), None) is not None:
        raise _too_slow(label, f"PNG with over {MAX_PNG_CHUNKS:,} chunks")


def _check_gif(raw: bytes, label: str) -> None:
    """Count what Pillow reads in Python before the first image: extensions, their sub-blocks,
    and stray bytes (skipped one at a time)."""
    pos = 13 + (3 << ((raw[10] & 7) + 1) if len(raw) > 10 and raw[10] & 0x80 else 0)
    blocks = 0
    while blocks <= MAX_GIF_BLOCKS and (match := _GIF_BLOCK.search(raw, pos)) is not None:
        blocks += match.start() - pos + 1
        if raw[match.start()] != 0x21:  # the first image, or the end
            break
        pos = match.start() + 2
        while pos < len(raw) and raw[pos] and blocks <= MAX_GIF_BLOCKS:
            blocks += 1
            pos += 1 + raw[pos]
        pos += 1
    if blocks > MAX_GIF_BLOCKS:
        raise _too_slow(label, f"GIF with over {MAX_GIF_BLOCKS:,} blocks before its first image")


def _check_bmp(raw: bytes, label: str) -> None:
    """Refuse a large run-length encoded BMP (compression 1 or 2 in a BITMAPINFOHEADER or later)."""
    if len(raw) < 34 or int.from_bytes(raw[14:18], "little") < 40:
        return
    width, height, _, _, compression = struct.unpack_from("<iiHHI", raw, 18)
    pixels = abs(width * height)
    if compression in (1, 2) and pixels > MAX_RLE_BMP_PIXELS:
        limit = f"over the {MAX_RLE_BMP_PIXELS:,}-pixel limit of that format"
        raise _too_slow(label, f"run-length encoded BMP of {pixels:,} pixels, {limit}")


def _check_tiff(raw: bytes, label: str) -> None:
    """Weigh the values of the IFDs Pillow loads with the first image (the first IFD, and the
    Exif, GPS and Interop IFDs it points to), and the strips of an uncompressed image."""
    order = "little" if raw[:2] == b"II" else "big"
    big = raw[2] == 43 or raw[3] == 43  # BigTIFF: 8-byte counts and offsets, 20-byte entries
    entry = struct.Struct(("<" if order == "little" else ">") + ("HHQ8s" if big else "HHI4s"))
    counted = 8 if big else 2  # the size of an IFD's entry count
    pending = [int.from_bytes(raw[8:16] if big else raw[4:8], order)]
    seen: set[int] = set()
    values = 0
    while pending:
        ifd = pending.pop()
        if ifd in seen or ifd + counted > len(raw):
            continue
        seen.add(ifd)
        start = ifd + counted
        entries = int.from_bytes(raw[ifd:start], order)
        if entries > MAX_TIFF_ENTRIES:
            raise _too_slow(label, f"TIFF with an IFD of over {MAX_TIFF_ENTRIES:,} entries")
        end = min(start + entries * entry.size, len(raw) - entry.size + 1)
        strips, compression = 0, 1
        for pos in range(start, end, entry.size):
            tag, kind, count, value = entry.unpack_from(raw, pos)
            values += count * _TIFF_COST.get(kind, 0)
            number = int.from_bytes(value[: _TIFF_WIDTH.get(kind, 4)], order)
            if tag in _TIFF_SUB_IFDS:
                pending.append(number)
            elif tag in (273, 324):  # StripOffsets, TileOffsets
                strips = count
            elif tag == 259:
                compression = number
        if len(seen) == 1 and compression == 1 and strips > MAX_TIFF_STRIPS:  # the image's own IFD
            raise _too_slow(label, f"uncompressed TIFF in over {MAX_TIFF_STRIPS:,} strips or tiles")
    if values > MAX_TIFF_VALUES:
        raise _too_slow(label, f"TIFF whose tags hold over {MAX_TIFF_VALUES:,} numbers")


def decode_bytes(image: Image.Image, structure_bytes: int, file_bytes: int, *, fitted: bool = False) -> int:
    """The peak memory of loading `image` (opened, drafted, not loaded) and converting it to an
    RGB array, from the header: Pillow's pixels (1, 2 or 4 bytes; with `fitted`, at least the 4
    of the copy that resizing the array makes once they are freed), the 3-byte array, a tile of
    the conversion, `structure_bytes` (from `check_structure`), and each decoder's buffers."""
    pixels = image.width * image.height
    stored = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4
    total = (
        pixels * (max(stored, 4 if fitted else 0) + 3) + structure_bytes + min(CONVERSION_BYTES, 32 * pixels)
    )
    if image.format == "WEBP":  # libwebp's two canvases and the frame's copy; the file's copy
        total += pixels * 12 + file_bytes
    elif image.format == "AVIF":  # libavif's YUV planes and RGB buffer (measured: 11.4 in all)
        total += pixels * 5
    elif image.format == "BMP" and image.info.get("compression") in (1, 2):  # Python's buffers
        total += pixels * 2
    return total


class MemoryBudget:
    """A semaphore weighted in bytes, shared by every thread of the process."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._held = 0
        self._room = threading.Condition()

    def reserve(
        self, size: int, label: str, width: int, height: int, fmt: str
    ) -> AbstractContextManager[None]:
        """Hold `size` bytes for a block (waiting until they fit beside the other decodes'), then
        trim the heap; small sizes run at once. An `ImageDecodeError` naming `label` when `size`
        alone is over the budget (for a `width` x `height` image in format `fmt`)."""
        if size > self.budget:
            reason = (
                f"decoding this {width}x{height} {fmt} image would take about {size / 2**20:,.0f} MiB, "
                f"over the {self.budget / 2**20:,.0f} MiB memory budget"
            )
            raise ImageDecodeError(label, reason)
        return self._hold(size) if size >= LARGE_DECODE_BYTES else nullcontext()

    @contextmanager
    def _hold(self, size: int) -> Iterator[None]:
        with self._room:
            self._room.wait_for(lambda: self._held + size <= self.budget)
            self._held += size
        try:
            yield
        finally:
            with self._room:
                self._held -= size
                self._room.notify_all()
            release_memory()


#: The budget every decode of this process shares.
MEMORY = MemoryBudget(MAX_DECODE_BYTES)
