"""A frozen feature extractor behind one small interface: what a probe model is built on.

A backbone turns prepared images (uint8, at its input size) into one feature vector each. It is
never trained here, so its identity (name, version, file hash) keys the feature cache: a new
encoder file means new features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class BackboneInfo:
    """What travels with a backbone: the preprocessing contract, provenance and licence."""

    name: str
    #: (height, width) of the images `embed` takes.
    input_size: tuple[int, int]
    #: Per-channel mean and standard deviation on [0, 1] pixels, applied inside `embed`.
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    #: Length of a feature vector.
    features: int
    #: Upstream model and revision the weights come from.
    version: str
    #: SHA-256 of the weights file: verified on load, part of the feature-cache key.
    sha256: str
    licence: str
    description: str


class Backbone(Protocol):
    """A frozen encoder: `embed` maps (N, H, W, 3) uint8 images to (N, features) float32.

    A row's features must not depend on the other rows of the batch: a score may never change
    with what else was scored alongside it.
    """

    info: BackboneInfo

    def embed(self, images: np.ndarray) -> np.ndarray: ...


def normalise(images: np.ndarray, info: BackboneInfo) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, scaled to [0, 1] and standardised."""
    pixels = np.asarray(images, dtype=np.float32) / 255.0
    pixels = (pixels - np.asarray(info.mean, np.float32)) / np.asarray(info.std, np.float32)
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))
