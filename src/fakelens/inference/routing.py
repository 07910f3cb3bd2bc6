"""The default detector: a real-world model for photos, the CIFAKE model for CIFAKE-sized images.

The probe model (a CLIP encoder and a head) judges photos and renders of any size; it has never
seen 32x32 images, which it would judge upscaled seven times. The CIFAKE model was trained on
exactly those. So images no larger than `SMALL_SIDE` pixels a side go to the small model.

The routing decision is made where the decoded size is known, in the card's preparation
(`fit="route"`, `data.decode.route_to`): a small image is prepared for the small model, then
enlarged to the large model's input by repeating each pixel, an exact encoding that
`predict_proba` recognises and undoes. Everything else (scan, serve, evaluate, the cache) sees
one detector with one input size. The one ambiguity: a large image whose crop is itself made of
7x7 blocks of one colour (a blank canvas) goes to the small model too, which judges it exactly.
"""

from __future__ import annotations

import numpy as np

from fakelens.config import SMALL_SIDE
from fakelens.errors import InvalidArgumentError
from fakelens.inference.detector import Detector

#: The name of the routed detector: what `predict` and `scan` use when no model is named.
ROUTED_NAME = "auto"


class RoutedDetector(Detector):
    """`large` for most images, `small` for those no larger than `SMALL_SIDE` a side."""

    def __init__(self, large: Detector, small: Detector) -> None:
        (height, width), (small_h, small_w) = large.card.input_size, small.card.input_size
        if small.card.fit != "stretch" or height % small_h or height // small_h != width // small_w:
            raise InvalidArgumentError(
                f"cannot route: {small.name} (input {small.card.input_size}, fit {small.card.fit!r}) must "
                f"stretch to an input that tiles {large.name}'s {large.card.input_size}"
            )
        if small.card.threshold != large.card.threshold:
            raise InvalidArgumentError(
                f"cannot route: the models' thresholds differ ({large.name} {large.card.threshold}, "
                f"{small.name} {small.card.threshold}); one label rule must hold for both"
            )
        card = large.card.with_updates(
            name=ROUTED_NAME,
            fit="route",
            architecture=f"{large.name}, with {small.name} for images of at most {SMALL_SIDE} px a side",
        )
        # Batches as large as the small model's: the large one splits its rows into its own.
        super().__init__(
            large.model, card, batch_size=small.batch_size, parallel_batches=large.parallel_batches
        )
        self.large, self.small = large, small
        self.factor = height // small_h

    def routed_small(self, images: np.ndarray) -> np.ndarray:
        """Rows that are a small image with each pixel repeated `factor` times."""
        f = self.factor
        enlarged = np.repeat(np.repeat(images[:, ::f, ::f], f, axis=1), f, axis=2)
        return np.all(images == enlarged, axis=(1, 2, 3))

    def score_prepared(self, images: np.ndarray) -> np.ndarray:
        small = self.routed_small(images)
        scores = np.empty(len(images))
        if (~small).any():
            scores[~small] = self.large.predict_proba(images[~small])
        if small.any():
            shrunk = np.ascontiguousarray(images[small][:, :: self.factor, :: self.factor])
            scores[small] = self.small.predict_proba(shrunk)
        return scores


def load_routed(
    *, backend: str | None = None, batch_size: int | None = None, precision: str = "auto"
) -> RoutedDetector:
    """The shipped default: `clipprobe`, with `patchres` (ONNX unless `backend` says keras, in
    `precision` then) for CIFAKE-sized images."""
    from fakelens.inference.detector import load_detector

    large = load_detector("clipprobe", batch_size=batch_size)
    small = load_detector("patchres", backend=backend or "onnx", batch_size=batch_size, precision=precision)
    return RoutedDetector(large, small)
