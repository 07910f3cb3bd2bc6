"""Occlusion (Zeiler & Fergus, 2014): which regions raised the AI score, for any `Detector`.

Only `Detector.predict_proba` is called, so ONNX and probe models (no Keras gradients) are
explained like Keras ones. Windows of the image are hidden one at a time and each copy rescored;
a window's value is how far the AI logit *fell* when it was hidden.

- **Windows**: a `grid` x `grid` of overlapping windows, each 2/(grid+1) of the image's height
  and width, at strides of half a window, so every pixel lies under one to four of them. They are
  cut from the image as drawn (the input shrunk to at most MAX_MAP_SIDE) and every copy then goes
  through `Detector.prepare`, so whatever the model's preparation (stretch or centre crop), the
  map lands on the right pixels, and a region the model never sees gets nothing.
- **Fill**: a Gaussian blur of the image (sigma: a quarter of a window). It removes the fine
  detail detectors of generated images rely on while keeping colour and layout; a grey square
  would add hard edges and a flat patch that are themselves evidence to the model.
- **Value**: the calibrated AI logit, log(p / (1 - p)), not the probability: a confident
  verdict saturates the probability (0.99999 and 0.9999 differ by 1e-5, their logits by 2.3),
  and the logit is Grad-CAM's unit too. A map cell is the mean fall over the windows covering
  it; only the positive part is kept, what pushed the image *towards* "AI", as with Grad-CAM.
- **Cost**: grid² + 2 model passes (51 at the default 7: about 3 s for a 60 ms CLIP encoder),
  the occluded copies plus the image as `Detector.predict` prepares it (the probability
  reported) and the unoccluded image as drawn (the baseline the falls are measured from).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from fakelens.errors import InvalidArgumentError
from fakelens.explain.heatmaps import Explanation, load_views, resize_map
from fakelens.inference.detector import Detector, Input
from fakelens.models.card import logit

#: Windows per side; grid² + 2 model passes per image.
GRID = 7


@dataclass(frozen=True)
class Occlusion:
    """The prepared images to score for one map, and how their scores become the map."""

    #: The image as drawn; the windows were cut from it.
    shown: np.ndarray
    #: Prepared images: as `Detector.predict` sees the input, `shown` whole, then `shown` with
    #: window (i, j) blurred, row by row.
    batch: np.ndarray
    grid: int

    def explanation(self, detector: Detector, probabilities: np.ndarray) -> Explanation:
        """The map from P(AI) of `batch` (`detector.predict_proba(batch)`)."""
        logits = logit(probabilities)
        falls = (logits[1] - logits[2:]).reshape(self.grid, self.grid)
        # (grid + 1)^2 cells, each covered by the windows (i - 1 or i, j - 1 or j) that exist.
        total, count = np.pad(falls, 1), np.pad(np.ones_like(falls), 1)
        cells = _corners(total) / _corners(count)
        probability = float(probabilities[0])
        return Explanation(
            image=self.shown,
            heatmap=resize_map(np.maximum(cells, 0.0), self.shown.shape[:2]),
            ai_probability=probability,
            label=str(detector.card.labels(np.array([probability]))[0]),
            method="occlusion",
        )


def occlude(detector: Detector, image: Input, *, name: str | None = None, grid: int = GRID) -> Occlusion:
    """Decode `image` (path, bytes or (H, W, 3) uint8 array) and prepare its occluded copies."""
    return occlude_views(detector, *load_views(detector, image, name), grid=grid)


def occlude_views(
    detector: Detector, prepared: np.ndarray, shown: np.ndarray, *, grid: int = GRID
) -> Occlusion:
    """`occlude` for an image already decoded by `heatmaps.load_views` (the server decodes
    untrusted files on its own bounded pool)."""
    if grid < 1:
        raise InvalidArgumentError(f"occlusion grid must be at least 1; received grid={grid}")
    height, width = shown.shape[:2]
    rows, cols = (np.linspace(0, side, grid + 2).round().astype(int) for side in (height, width))
    sigma = max(height, width) / (2 * (grid + 1))
    blurred = np.asarray(Image.fromarray(shown).filter(ImageFilter.GaussianBlur(sigma)))
    copies = []
    for i in range(grid):
        for j in range(grid):
            window = slice(rows[i], rows[i + 2]), slice(cols[j], cols[j + 2])
            copy = shown.copy()
            copy[window] = blurred[window]
            copies.append(detector.prepare(copy))
    return Occlusion(shown, np.stack([prepared, detector.prepare(shown), *copies]), grid)


def explain(detector: Detector, image: Input, *, name: str | None = None, grid: int = GRID) -> Explanation:
    """Score `image` and map its AI evidence by occlusion: grid² + 2 passes of the model."""
    occlusion = occlude(detector, image, name=name, grid=grid)
    return occlusion.explanation(detector, detector.predict_proba(occlusion.batch))


def _corners(padded: np.ndarray) -> np.ndarray:
    """Sum of each 2x2 block (stride 1)."""
    return padded[:-1, :-1] + padded[1:, :-1] + padded[:-1, 1:] + padded[1:, 1:]
