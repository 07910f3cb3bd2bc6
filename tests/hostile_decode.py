"""Generated files that cost a decoder time or memory out of all proportion to their size.

`slow_decodes` (issue 19, class 10): few bytes, long decodes (scans, markers, chunks, blocks, or
a decoder written in Python); each is refused before any decoder runs. `huge_canvases` (class
11): small files declaring 100-megapixel canvases; each is judged within the memory budget, or
refused by it. Every file is built here in milliseconds; nothing is committed as binary.
"""

from __future__ import annotations

import struct
import zlib
from functools import cache

import numpy as np
from hostile import NOT_IMAGE, Case, save, webp_with_size
from PIL import Image

TOO_SLOW = "too long to decode"
OVER_BUDGET = "memory budget"
CANVAS = 10_000


def segments(jpeg: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each marker segment of a JPEG; a scan's entropy-coded data
    belongs to its SOS segment."""
    found, pos = [], 2
    while pos < len(jpeg):
        marker = jpeg[pos + 1]
        if marker == 0xD9:
            return [*found, (marker, pos, pos + 2)]
        end = pos + 2 + struct.unpack_from(">H", jpeg, pos + 2)[0]
        while marker == 0xDA and not (jpeg[end] == 0xFF and jpeg[end + 1] not in (0, *range(0xD0, 0xD8))):
            end += 1
        found.append((marker, pos, end))
        pos = end
    return found


def progressive_jpeg(size: int, scans: int, subsampling: int = 2) -> bytes:
    """A flat grey progressive JPEG of `size` x `size` whose smallest scan is repeated until the
    file has `scans` scans (libjpeg warns of a bogus progression, and decodes every one)."""
    data = save(
        Image.new("RGB", (size, size), (120, 130, 140)), "JPEG", progressive=True, subsampling=subsampling
    )
    sos = [s for s in segments(data) if s[0] == 0xDA]
    _, start, end = min(sos, key=lambda s: s[2] - s[1])
    extra = data[start:end] * (scans - len(sos))
    return data[: sos[-1][2]] + extra + data[sos[-1][2] :]


def _small_jpeg() -> bytes:
    return save(Image.new("RGB", (8, 8), (90, 90, 90)), "JPEG")


def jpeg_with_comments(count: int) -> bytes:
    """`count` empty COM segments before the frame header."""
    data = _small_jpeg()
    return data[:2] + b"\xff\xfe\x00\x02" * count + data[2:]


def jpeg_with_junk(count: int) -> bytes:
    """`count` junk bytes between two header segments (Pillow skips them one at a time)."""
    data = _small_jpeg()
    return data[:2] + b"\x00" * count + data[2:]


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _zeros_zlib(size: int) -> bytes:
    """A zlib stream of `size` zero bytes: one megabyte compressed, and its blocks after a full
    flush (which resets the compressor's history) repeated; compressing a gigabyte would take
    seconds. The checksum (Adler-32) of n zeros is (n mod 65521) << 16 | 1."""
    block = 1 << 20
    full, rest = divmod(size, block)
    if not full:
        return zlib.compress(bytes(size))
    compressor = zlib.compressobj(9)
    first = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.compress(bytes(rest)) + compressor.flush()
    return first + again * (full - 1) + tail[:-4] + struct.pack(">I", ((size % 65521) << 16) | 1)


def png(width: int, height: int, colour: int, depth: int, extra: bytes = b"") -> bytes:
    """A black (or transparent) PNG of any size and colour type; `extra` chunks before IDAT."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    row = 1 + -(-width * channels * depth // 8)
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    palette = png_chunk(b"PLTE", bytes(768)) + png_chunk(b"tRNS", b"\x00") if colour == 3 else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + palette
        + extra
        + png_chunk(b"IDAT", _zeros_zlib(row * height))
        + png_chunk(b"IEND", b"")
    )


def gif(width: int, height: int, before_image: bytes = b"") -> bytes:
    """A GIF whose canvas is `width` x `height` and whose one 1x1 image is a single code."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + bytes(6)
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return screen + before_image + image + b"\x3b"


def bmp_rle(width: int, height: int, rle4: bool, rows: bytes) -> bytes:
    """A run-length encoded BMP (RLE4 or RLE8) whose pixel data is `rows`, then end of bitmap."""
    colours = 16 if rle4 else 256
    body = rows + b"\x00\x01"
    info = struct.pack(
        "<IiiHHIIiiII", 40, width, height, 1, 4 if rle4 else 8, 2 if rle4 else 1, len(body), 0, 0, colours, 0
    )
    offset = 14 + len(info) + 4 * colours
    return b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset) + info + bytes(4 * colours) + body


def animated_webp(width: int, height: int) -> bytes:
    """Two 1x1 frames on a `width` x `height` canvas (the VP8X chunk declares it)."""
    frames = [Image.new("RGBA", (1, 1), colour) for colour in ((255, 0, 0, 255), (0, 0, 255, 128))]
    data = bytearray(save(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True))
    assert data[12:16] == b"VP8X"
    data[24:30] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return bytes(data)


def tiff(entries: list[tuple[int, int, int, int]], blob: bytes = b"") -> bytes:
    """A little-endian TIFF: `blob` after the header (at offset 8), then one IFD of `entries`
    (tag, type, count, value or offset from the file's start), sorted by tag."""
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in sorted(entries))
    return b"II*\x00" + struct.pack("<I", 8 + len(blob)) + blob + ifd + bytes(4)


def _grey_tiff_tags(height: int) -> list[tuple[int, int, int, int]]:
    """An uncompressed 8-bit grey image one pixel wide."""
    return [
        (256, 4, 1, 1),
        (257, 4, 1, height),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (277, 3, 1, 1),
    ]


def tiff_strips(strips: int) -> bytes:
    """An uncompressed TIFF in `strips` strips of one row (Pillow makes a tile of each)."""
    blob = bytes(4 * strips) + struct.pack("<I", 1) * strips
    return tiff(
        [*_grey_tiff_tags(strips), (273, 4, strips, 8), (278, 4, 1, 1), (279, 4, strips, 8 + 4 * strips)],
        blob,
    )


def tiff_exif_rationals(count: int) -> bytes:
    """A 1 x 1 TIFF whose Exif IFD holds `count` rationals (Pillow makes an object of each)."""
    exif = struct.pack("<H", 1) + struct.pack("<HHII", 37386, 5, count, 28) + bytes(4)  # at 10; data at 28
    blob = b"\x80\x00" + exif + struct.pack("<II", 1, 1) * count
    return tiff(
        [*_grey_tiff_tags(1), (273, 4, 1, 8), (278, 4, 1, 1), (279, 4, 1, 1), (34665, 4, 1, 10)], blob
    )


def bigtiff(filler: int = 0, strip_offset: int = 8) -> bytes:
    """A 1 x 1 grey BigTIFF whose pixel is at `strip_offset`, with `filler` more entries of a
    private tag in its IFD (Pillow reads each in Python; a classic TIFF holds at most 65,535)."""
    image = [(256, 4, 1, 1), (257, 4, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1)]
    image += [(273, 16, 1, strip_offset), (277, 3, 1, 1), (278, 4, 1, 1), (279, 4, 1, 1)]
    entries = image + [(65000, 1, 1, 0)] * filler
    ifd = struct.pack("<Q", len(entries)) + b"".join(struct.pack("<HHQQ", *e) for e in entries) + bytes(8)
    return b"II+\x00" + struct.pack("<HHQ", 8, 0, 16) + ifd


def qoi(width: int, height: int) -> bytes:
    """A QOI image of runs: Pillow decodes QOI in Python, a pixel at a time."""
    runs = -(-width * height // 62)
    return b"qoif" + struct.pack(">IIBB", width, height, 3, 0) + b"\xfd" * runs + bytes(7) + b"\x01"


@cache
def slow_decodes() -> tuple[Case, ...]:
    """Class 10: each is refused before a decoder runs (it would run for seconds to minutes)."""
    comments = b"".join(b"\x21\xfe" + b"\x01x" * 1000 + b"\x00" for _ in range(200))
    rle4_rows = (b"\xff\x12" * (CANVAS // 255) + bytes([CANVAS % 255, 0x12]) + b"\x00\x00") * CANVAS
    return (
        Case("scans-20000.jpg", progressive_jpeg(4096, 20_000), f"over \\d+ scans at 4096x4096.*{TOO_SLOW}"),
        Case("scans-100000-small.jpg", progressive_jpeg(64, 100_000), f"over 500 scans.*{TOO_SLOW}"),
        Case("segments.jpg", jpeg_with_comments(200_000), f"marker segments.*{TOO_SLOW}"),
        Case("junk.jpg", jpeg_with_junk(2 << 20), f"junk bytes.*{TOO_SLOW}"),
        Case("chunks.png", png(64, 64, 2, 8, png_chunk(b"abCd", b"") * 300_000), f"chunks.*{TOO_SLOW}"),
        Case("empty-idats.png", png(64, 64, 2, 8, png_chunk(b"IDAT", b"") * 300_000), f"chunks.*{TOO_SLOW}"),
        Case("sub-blocks.gif", gif(64, 64, comments), f"blocks before its first image.*{TOO_SLOW}"),
        Case("stray-bytes.gif", gif(64, 64, b"\x00" * 200_000), f"blocks before its first image.*{TOO_SLOW}"),
        Case("rle4-runs.bmp", bmp_rle(CANVAS, CANVAS, True, rle4_rows), f"run-length.*{TOO_SLOW}"),
        Case("rle8-row-ends.bmp", bmp_rle(CANVAS, CANVAS, False, b"\x01\x05\x00\x00" * CANVAS), TOO_SLOW),
        Case("qoi-named.png", qoi(4000, 4000), NOT_IMAGE),
        Case("strips.tif", tiff_strips(1_000_000), f"over 100,000 strips.*{TOO_SLOW}"),
        Case("exif-rationals.tif", tiff_exif_rationals(100_000), f"tags hold over.*{TOO_SLOW}"),
        Case("bigtiff-entries.tif", bigtiff(filler=70_000), f"IFD of over 65,535 entries.*{TOO_SLOW}"),
    )


@cache
def huge_canvases() -> tuple[Case, ...]:
    """Class 11: 100-megapixel canvases in a few bytes to a few hundred KB: judged in the memory
    budget when their decode fits it, else refused by it before decoding."""
    return (
        Case("canvas.gif", gif(CANVAS, CANVAS), None),
        Case("canvas-animated.webp", animated_webp(9999, 9999), OVER_BUDGET),
        Case("canvas-still.webp", webp_with_size(9999, 9999), OVER_BUDGET),
        Case("rgba.png", png(CANVAS, CANVAS, 6, 8), None),
        Case("rgba16.png", png(CANVAS, CANVAS, 6, 16), None),
        Case("grey16.png", png(CANVAS, CANVAS, 0, 16), None),
        Case("grey-alpha16.png", png(CANVAS, CANVAS, 4, 16), None),
        Case("palette-transparent.png", png(CANVAS, CANVAS, 3, 8), None),
    )


def photo(height: int, width: int, channels: int = 3, dtype: type = np.uint8) -> np.ndarray:
    """Smooth gradients with a little noise: large legitimate images that compress quickly."""
    top = np.iinfo(dtype).max
    ramp = np.linspace(0, top * 0.8, width)[None, :, None] + np.linspace(0, top * 0.15, height)[:, None, None]
    noise = np.random.default_rng(0).integers(0, top // 20, (height, 1, channels))
    return (ramp + noise).astype(dtype)


def large_photos() -> dict[str, bytes]:
    """Legitimately large images that must decode exactly as before."""
    rgba = Image.fromarray(photo(3000, 4000, 4), "RGBA")
    return {
        "camera-24mp.jpg": save(Image.fromarray(photo(4000, 6000)), "JPEG", quality=90),
        "progressive-12mp.jpg": save(Image.fromarray(photo(3000, 4000)), "JPEG", progressive=True),
        "rgba-12mp.png": save(rgba, "PNG", compress_level=1),
        "grey16-12mp.png": save(
            Image.fromarray(photo(3000, 4000, 1, np.uint16)[..., 0]), "PNG", compress_level=1
        ),
    }
