"""Views of an image for training and judging a probe model, the same whatever the label.

Real-world data sets leak their label through the container: AI images are mostly PNG, photos
JPEG; sizes and qualities differ too. A training view crops, re-sizes and re-encodes every
image at random (JPEG at a random quality, PNG or WebP), so a head cannot learn the container; the
judging view re-encodes every image as JPEG q90, so a score cannot read it either.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image

from fakelens.data.decode import crop_to, decode_image, load_image, reencode_jpeg

#: The judging view's JPEG quality (sd-unsplash's documented protocol).
JUDGING_QUALITY = 90
#: Training views: the share of the image a random crop keeps ...
CROP_AREA = (0.4, 1.0)
#: ... and its short side before re-encoding, relative to the model input's.
SCALE_RANGE = (0.7, 1.5)
#: Training views: (format, probability, quality range); PNG has no quality.
ENCODINGS = (("JPEG", 0.6, (50, 100)), ("WEBP", 0.2, (60, 100)), ("PNG", 0.2, (0, 0)))


def encode(pixels: np.ndarray, fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def judging_view(raw: bytes, size: tuple[int, int], name: str) -> np.ndarray:
    """Re-encoded as JPEG q90, then fitted to `size` (short side, crop): what `fakelens evaluate
    --reencode-jpeg 90` does to every image."""
    return load_image(reencode_jpeg(raw, JUDGING_QUALITY, name=name), size, name=name, fit="crop")


def training_view(raw: bytes, size: tuple[int, int], name: str, seed: int, view: int) -> np.ndarray:
    """A random crop (a share `CROP_AREA` of the image at a random place), rescaled so its short
    side is `SCALE_RANGE` times the input's and re-encoded at random, then fitted to `size`.

    The random place and scale move a JPEG's 8x8 block grid off the model's grid, and the
    random encoding gives every image, whatever its label, artefacts of its own. The draw
    depends only on the image's bytes, `seed` and `view`: the same in every run, and cached.
    """
    content = int.from_bytes(hashlib.sha256(raw).digest()[:8], "little")
    rng = np.random.default_rng([seed, view, content])
    pixels = decode_image(raw, name=name, draft_size=(2 * size[1], 2 * size[0]))
    height, width = pixels.shape[:2]
    side = np.sqrt(rng.uniform(*CROP_AREA))
    crop_h, crop_w = max(1, round(height * side)), max(1, round(width * side))
    top, left = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
    scale = rng.uniform(*SCALE_RANGE) * min(size) / min(crop_h, crop_w)
    target = (max(8, round(crop_w * scale)), max(8, round(crop_h * scale)))
    box = (left, top, left + crop_w, top + crop_h)
    pixels = np.asarray(Image.fromarray(pixels).resize(target, Image.Resampling.BICUBIC, box=box))
    formats, chances, qualities = zip(*ENCODINGS)
    choice = rng.choice(len(formats), p=chances)
    low, high = qualities[choice]
    encoded = encode(pixels, formats[choice], int(rng.integers(low, high + 1)))
    return crop_to(decode_image(encoded, name=name), size)
