"""Safe decoding of one untrusted image into an RGB uint8 array.

Every failure becomes an `ImageDecodeError` naming the file and the reason: empty, unreadable,
not an image, truncated or corrupt, too many pixels. The header is read first, so the pixel
limit is enforced before any pixel data is decoded.

Plain JPEGs (YCbCr or grey, no EXIF) go straight to libjpeg-turbo through simplejpeg: several
times faster than Pillow on small files, whose Python-level marker parsing dominates, and
bit-identical to it. Everything else, and any JPEG simplejpeg declines, goes through Pillow,
which also words the errors.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import simplejpeg
from PIL import Image, ImageOps, UnidentifiedImageError

from fakelens.config import INPUT_SIZE, MAX_FILE_BYTES, MAX_PIXELS, SMALL_SIDE
from fakelens.errors import ImageDecodeError

ImageInput = str | os.PathLike[str] | bytes | bytearray | memoryview
BYTES_TYPES = (bytes, bytearray, memoryview)
#: What Pillow raises on damaged data, depending on the codec.
PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, TypeError, IndexError, KeyError)

_WHITE = (255, 255, 255)
#: Read-only, and no waiting for a writer when the path is a FIFO (Python's descriptors are
#: not inherited by child processes anyway).
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
#: Leading bytes of common formats, to tell "damaged image" from "not an image at all".
_SIGNATURES = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


#: The reason given for data that is no image format at all (as opposed to a damaged image).
NOT_AN_IMAGE = "not a recognised image format"
#: ISO-BMFF brands (bytes 8-12, after `ftyp`) of the HEIF family, which Pillow cannot read.
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}


def _unidentified_reason(raw: bytes) -> str:
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "corrupt or truncated WEBP data"
    if raw[4:8] == b"ftyp" and raw[8:12] in _HEIF_BRANDS:
        return "HEIC/HEIF images are not supported; convert it to JPEG, PNG or AVIF"
    if raw[4:8] == b"ftyp" and raw[8:12] in (b"avif", b"avis"):
        return "corrupt or truncated AVIF data (or a Pillow built without AVIF support)"
    for signature, fmt in _SIGNATURES.items():
        if raw.startswith(signature):
            return f"corrupt or truncated {fmt} data"
    return NOT_AN_IMAGE


def read_file_bytes(path: str | os.PathLike[str], max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """Read a whole regular file, refusing anything else (directories, FIFOs, devices) and
    anything over `max_bytes`, even if it grows while being read.

    One open and unbuffered reads sized from `fstat`: a buffered `read(max_bytes + 1)` would
    allocate the whole limit for every file. Opening does not block on a FIFO (O_NONBLOCK).
    """
    if not isinstance(path, (str, os.PathLike)):
        received = type(path).__name__
        raise ImageDecodeError(repr(path), f"expected a path, bytes or an array; received {received}")
    try:
        fd = os.open(path, _OPEN_FLAGS)
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise ImageDecodeError(path, "is a directory, not an image file")
            if not stat.S_ISREG(info.st_mode):
                raise ImageDecodeError(path, "not a regular file (a pipe, socket or device)")
            if info.st_size > max_bytes:
                limit = f"over the {max_bytes:,}-byte limit"
                raise ImageDecodeError(path, f"file is {info.st_size:,} bytes, {limit}")
            data = _read_up_to(fd, info.st_size, max_bytes + 1)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise ImageDecodeError(path, "file not found (or a dangling link)") from None
    except PermissionError:
        raise ImageDecodeError(path, "permission denied") from None
    except IsADirectoryError:  # where a folder cannot be opened at all (not Linux)
        raise ImageDecodeError(path, "is a directory, not an image file") from None
    except OSError as exc:
        raise ImageDecodeError(path, f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ImageDecodeError(path, f"file grew past the {max_bytes:,}-byte limit while being read")
    return data


def _read_up_to(fd: int, expected: int, limit: int) -> bytes:
    """Everything until the end of `fd`, or the first `limit` bytes: one read when the file still
    has the `expected` size, then 64 KB reads until end of file."""
    parts = [os.read(fd, min(expected + 1, limit))]
    total = len(parts[0])
    while parts[-1] and total < limit:
        parts.append(os.read(fd, min(1 << 16, limit - total)))
        total += len(parts[-1])
    return parts[0] if len(parts) == 2 and not parts[1] else b"".join(parts)


def input_bytes(data: ImageInput, name: str | None = None) -> tuple[str, bytes]:
    """The name to report and the whole file's bytes, for a path or bytes-like input."""
    if isinstance(data, BYTES_TYPES):
        raw = bytes(data)
        label = name or "<bytes>"
    else:
        label = name or str(data)
        raw = read_file_bytes(data)
    if not raw:
        raise ImageDecodeError(label, "file is empty (0 bytes)")
    return label, raw


@contextmanager
def open_image(raw: bytes, label: str, max_pixels: int = MAX_PIXELS) -> Iterator[Image.Image]:
    """Pillow's lazy `Image.open` (header only) with the pixel limit checked; any Pillow failure
    inside the block becomes an `ImageDecodeError` naming `label`."""
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below replaces Pillow's bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as image:
                width, height = image.size
                if width < 1 or height < 1:
                    raise ImageDecodeError(label, f"image has no pixels ({width}x{height})")
                if width * height > max_pixels:
                    raise ImageDecodeError(
                        label,
                        f"image is {width}x{height} = {width * height:,} pixels, over the "
                        f"{max_pixels:,}-pixel limit (raise max_pixels if it is genuine)",
                    )
                yield image
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError(label, _unidentified_reason(raw)) from None
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(label, f"decompression bomb refused: {exc}") from None
    except PIL_ERRORS as exc:
        raise ImageDecodeError(label, f"corrupt or truncated image data ({exc})") from None


def decode_image(
    data: ImageInput,
    *,
    name: str | None = None,
    max_pixels: int = MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Decode `data` (a path or the file's bytes) to an (H, W, 3) uint8 RGB array.

    EXIF orientation is applied; grey, palette, alpha, CMYK and 16-bit images become RGB with
    alpha composited on white; animated images are judged on their first frame. `draft_size`
    lets JPEG decoding skip detail that a later resize to that size would throw away.
    """
    label, raw = input_bytes(data, name)
    fast = _decode_plain_jpeg(raw, max_pixels, draft_size)
    if fast is not None:
        return fast
    with open_image(raw, label, max_pixels) as image:
        if draft_size is not None and image.format == "JPEG":
            image.draft("RGB", draft_size)
        image.load()
        return to_rgb_array(ImageOps.exif_transpose(image))


def _draft_scale(width: int, height: int, draft_size: tuple[int, int] | None) -> int:
    """The JPEG DCT scale (1, 2, 4 or 8) that Pillow's `draft` picks: the largest that keeps the
    image at least `draft_size` = (width, height)."""
    if draft_size is None:
        return 1
    ratio = min(width // max(draft_size[0], 1), height // max(draft_size[1], 1))
    return next((scale for scale in (8, 4, 2) if ratio >= scale), 1)


def _decode_plain_jpeg(raw: bytes, max_pixels: int, draft_size: tuple[int, int] | None) -> np.ndarray | None:
    """Decode a plain JPEG with libjpeg-turbo directly, exactly as Pillow would (same DCT
    scaling as `draft`); None hands the file to Pillow: not a JPEG, EXIF (orientation),
    CMYK/RGB colour, over the pixel limit, or damaged."""
    if not raw.startswith(b"\xff\xd8\xff"):
        return None
    scan_start = raw.find(b"\xff\xda")
    if scan_start < 0 or raw.find(b"Exif\x00\x00", 0, scan_start) >= 0:
        return None
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(raw)
        if colorspace not in ("YCbCr", "Gray") or not 0 < width * height <= max_pixels:
            return None
        scale = _draft_scale(width, height, draft_size)
        return simplejpeg.decode_jpeg(
            raw, colorspace="RGB", min_width=-(-width // scale), min_height=-(-height // scale), strict=True
        )
    except ValueError:
        return None


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to an (H, W, 3) uint8 RGB array."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit (or 32-bit integer) grey: scale the 0..65535 range down to 0..255.
        grey = np.asarray(image, dtype=np.float64)
        scaled = np.clip(np.rint(grey / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(scaled[..., None], 3, axis=2)
    if image.mode == "F":
        grey = np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def resize_to(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, 3) uint8 array to `size` = (height, width) with antialiasing.

    The single resize used by caching, training and inference, so that a model sees images
    prepared the same way everywhere.
    """
    height, width = size
    if array.shape[:2] == (height, width):
        return array
    resized = Image.fromarray(array).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def crop_to(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The largest centred region of `size`'s aspect, resized (bicubic, antialiased) to `size`.

    For a square `size` this is CLIP's own preparation: the short side resized to the input
    size, then a centre crop. The image is never stretched, so a model sees photos of every
    aspect at their true proportions.
    """
    height, width = size
    rows, cols = array.shape[:2]
    if (rows, cols) == (height, width):
        return array
    scale = min(rows / height, cols / width)
    crop_h, crop_w = height * scale, width * scale
    top, left = max(0.0, (rows - crop_h) / 2), max(0.0, (cols - crop_w) / 2)
    box = (left, top, left + crop_w, top + crop_h)
    resized = Image.fromarray(array).resize((width, height), Image.Resampling.BICUBIC, box=box)
    return np.asarray(resized, dtype=np.uint8)


def route_to(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The routed default's preparation (`routing`): an image no larger than `SMALL_SIDE` a
    side is stretched to the CIFAKE model's input, then enlarged to `size` by repeating each
    pixel (an exact encoding the router recognises); any other image is cropped to `size`."""
    if max(array.shape[:2]) > SMALL_SIDE:
        return crop_to(array, size)
    factor = size[0] // INPUT_SIZE[0]
    return np.repeat(np.repeat(resize_to(array, INPUT_SIZE), factor, axis=0), factor, axis=1)


#: How an image is brought to a model's input size: the card's `fit`.
FITS = {"stretch": resize_to, "crop": crop_to, "route": route_to}


def load_image(
    data: ImageInput,
    size: tuple[int, int],
    *,
    name: str | None = None,
    max_pixels: int = MAX_PIXELS,
    fit: str = "stretch",
) -> np.ndarray:
    """Decode and fit to `size` in one call: what the data pipeline and the detector both need.

    Large JPEGs are decoded at a reduced size (DCT scaling) of at least twice `size`, then
    resized with antialiasing: a 12-megapixel photo decodes at 1/8 scale in a few milliseconds.
    """
    draft_size = (2 * size[1], 2 * size[0])
    return FITS[fit](decode_image(data, name=name, max_pixels=max_pixels, draft_size=draft_size), size)


def reencode_jpeg(data: ImageInput, quality: int, *, name: str | None = None) -> bytes:
    """Decode, then encode again as an RGB JPEG at `quality`: the same container for all."""
    buffer = io.BytesIO()
    Image.fromarray(decode_image(data, name=name)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
