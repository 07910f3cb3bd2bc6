"""The robustness battery: what a published image goes through before anyone checks it.

Each transform maps an (H, W, 3) uint8 image to another; the detector then prepares the
result exactly as it would a file (its normal resize path).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter

Transform = Callable[[np.ndarray], np.ndarray]


def jpeg(quality: int) -> Transform:
    def transform(image: np.ndarray) -> np.ndarray:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        return np.asarray(Image.open(buffer).convert("RGB"))

    return transform


def down_up(factor: float) -> Transform:
    def transform(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        small = Image.fromarray(image).resize(
            (max(1, round(width * factor)), max(1, round(height * factor))), Image.Resampling.BILINEAR
        )
        return np.asarray(small.resize((width, height), Image.Resampling.BILINEAR))

    return transform


def gaussian_blur(sigma: float) -> Transform:
    return lambda image: np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(sigma)))


def gaussian_noise(sigma: float, seed: int = 0) -> Transform:
    """Additive noise with `sigma` on the 0..255 scale; seeded by the image's bytes, so
    the same image always gets the same noise."""

    def transform(image: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng([seed, hash(image.tobytes()) & 0xFFFFFFFF])
        noisy = image.astype(np.float64) + rng.normal(0.0, sigma, image.shape)
        return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)

    return transform


def upscale(size: int) -> Transform:
    return lambda image: np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


#: The battery `fakelens evaluate --robustness` runs, in report order.
BATTERY: dict[str, Transform] = {
    "jpeg_q95": jpeg(95),
    "jpeg_q75": jpeg(75),
    "jpeg_q50": jpeg(50),
    "down_up_0.5x": down_up(0.5),
    "blur_sigma1": gaussian_blur(1.0),
    "noise_sigma5": gaussian_noise(5.0),
    "upscaled_64": upscale(64),
    "upscaled_128": upscale(128),
    "upscaled_256": upscale(256),
}
