"""Each robustness transform does what its name says."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_image

from fakelens.evaluation.robustness import BATTERY, down_up, gaussian_blur, gaussian_noise, jpeg, upscale


def smooth_image(size: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    return np.stack([x * 7 % 256, y * 7 % 256, (x + y) * 3 % 256], axis=2).astype(np.uint8)


@pytest.mark.parametrize("name", list(BATTERY))
def test_every_transform_returns_uint8_rgb(name):
    out = BATTERY[name](random_image(0))
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


def test_lower_jpeg_quality_loses_more():
    image = random_image(1)
    errors = [np.abs(jpeg(q)(image).astype(int) - image).mean() for q in (95, 75, 50)]
    assert 0 < errors[0] < errors[1] < errors[2]


def test_down_up_and_blur_remove_high_frequencies():
    image = random_image(2)
    for transform in (down_up(0.5), gaussian_blur(1.0)):
        out = transform(image).astype(float)
        assert out.shape == image.shape
        assert np.abs(np.diff(out, axis=1)).mean() < 0.6 * np.abs(np.diff(image.astype(float), axis=1)).mean()


def test_noise_has_the_requested_strength_and_is_repeatable():
    image = np.full((64, 64, 3), 128, np.uint8)
    out = gaussian_noise(5.0)(image)
    assert np.std(out.astype(float) - 128) == pytest.approx(5.0, rel=0.1)
    assert np.array_equal(out, gaussian_noise(5.0)(image))


def test_upscale_sizes():
    assert upscale(128)(smooth_image()).shape == (128, 128, 3)
