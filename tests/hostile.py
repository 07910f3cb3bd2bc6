"""A generated corpus of hostile image files: each case is a file name, its bytes and the outcome.

`outcome` is None for a file that must be judged (with a result), or a fragment of the
`ImageDecodeError` reason it must get. Everything is made here, nothing is committed as binary.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from conftest import bomb_png, encode, random_image
from PIL import Image, features

TRUNCATED = "corrupt or truncated"
NOT_IMAGE = "not a recognised image format"
TOO_BIG = "pixel limit|decompression bomb"


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    outcome: str | None  # None: judged; else a regex the error reason must match


def save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def photo(size: tuple[int, int] = (64, 48), seed: int = 3) -> np.ndarray:
    """A smooth image with some noise: compresses like a photo, so cut points land in pixel data."""
    ramp = np.linspace(0, 200, size[1], dtype=np.uint8)[None, :, None]
    return (random_image(seed, size) // 4 + ramp).astype(np.uint8)


def _png_with_size(width: int, height: int) -> bytes:
    """`bomb_png`'s idea for any size: a valid IHDR claiming width x height, one tiny IDAT."""
    data = bytearray(bomb_png())
    body = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = body
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + body))
    return bytes(data)


def _jpeg_with_size(width: int, height: int) -> bytes:
    data = bytearray(encode(photo()))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _gif_with_size(width: int, height: int) -> bytes:
    data = bytearray(save(Image.new("P", (2, 2)), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    descriptor = data.find(b"\x2c", 13)
    data[descriptor + 5 : descriptor + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def _bmp_with_size(width: int, height: int) -> bytes:
    data = bytearray(save(Image.new("RGB", (2, 2)), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def webp_with_size(width: int, height: int) -> bytes:
    """A lossless WebP whose VP8L header declares `width` x `height` (its data is for 2 x 2)."""
    data = bytearray(save(Image.new("RGB", (2, 2)), "WEBP", lossless=True))
    # VP8L: 14-bit width-1 and height-1 packed after the 0x2f signature byte.
    bits = (width - 1) | ((height - 1) << 14) | (int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1))
    data[21:25] = bits.to_bytes(4, "little")
    return bytes(data)


def bombs() -> list[Case]:
    """Valid headers claiming absurd sizes, in every common format: refused before decoding."""
    return [
        Case("bomb.png", _png_with_size(100_000, 100_000), TOO_BIG),
        Case("bomb-wide.png", _png_with_size(2**31 - 1, 1), TOO_BIG),
        Case("bomb.jpg", _jpeg_with_size(65_500, 65_500), TOO_BIG),
        Case("bomb.gif", _gif_with_size(65_535, 65_535), TOO_BIG),
        Case("bomb.bmp", _bmp_with_size(200_000, 200_000), TOO_BIG),
        Case("bomb.webp", webp_with_size(16_384, 16_384), TOO_BIG),
    ]


def truncations(name: str, data: bytes, cuts: int = 8) -> list[Case]:
    """`data` cut at `cuts` points spread over its length (never 0: that is the empty file)."""
    points = sorted({max(1, len(data) * k // (cuts + 1)) for k in range(1, cuts + 1)})
    return [Case(f"cut-{point}-{name}", data[:point], f"{TRUNCATED}|{NOT_IMAGE}") for point in points]


def odd_but_valid() -> list[Case]:
    """Unusual images that must be judged, not refused (AVIF where Pillow is built with it)."""
    rgb = photo((16, 16))
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((250, 250, 250), (0, 0, 0))]
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([10, 20, 30] * 256)
    grey16 = Image.fromarray((np.arange(64).reshape(8, 8) * 1000).astype(np.uint16))
    return [
        Case("one-pixel.png", encode(rgb[:1, :1], "PNG"), None),
        Case("one-row.png", encode(rgb[:1], "PNG"), None),
        Case("one-column.jpg", encode(np.ascontiguousarray(rgb[:, :1])), None),
        Case("grey16.png", save(grey16, "PNG"), None),
        Case("cmyk.jpg", save(Image.fromarray(rgb).convert("CMYK"), "JPEG"), None),
        Case("palette-transparent.png", save(palette, "PNG", transparency=0), None),
        Case("grey-alpha.png", save(Image.new("LA", (8, 8), (40, 128)), "PNG"), None),
        Case("exif-rotated.jpg", save(Image.fromarray(photo((8, 16))), "JPEG", exif=exif), None),
        Case("animated.gif", save(frames[0], "GIF", save_all=True, append_images=frames[1:]), None),
        Case("animated.webp", save(frames[0], "WEBP", save_all=True, append_images=frames[1:]), None),
    ] + ([Case("photo.avif", save(Image.fromarray(rgb), "AVIF"), None)] if features.check("avif") else [])


def not_images() -> list[Case]:
    rng = np.random.default_rng(11)
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    return [
        Case("empty.jpg", b"", "empty"),
        Case("random.jpg", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), NOT_IMAGE),
        Case("text.jpg", b"just some text, no pixels\n" * 10, NOT_IMAGE),
        Case("page.jpg", b"<!doctype html><html><body><img src=x.jpg></body></html>", NOT_IMAGE),
        Case("drawing.jpg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', NOT_IMAGE),
        Case("document.jpg", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n%%EOF", NOT_IMAGE),
        Case("photo.heic", heic, "HEIC/HEIF .*not supported"),
    ]


def corpus() -> list[Case]:
    """Every case: odd-but-valid images, non-images, truncations of three formats, bombs."""
    image = photo()
    cut = [
        *truncations("photo.jpg", encode(image)),
        *truncations("photo.png", encode(image, "PNG")),
        *truncations("photo.webp", encode(image, "WEBP", quality=80)),
    ]
    return [*odd_but_valid(), *not_images(), *cut, *bombs()]
