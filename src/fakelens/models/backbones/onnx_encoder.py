"""An image encoder exported to ONNX, run with onnxruntime alone (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fakelens.errors import ModelLoadError
from fakelens.models.backbones.base import BackboneInfo, normalise
from fakelens.models.runtime import one_thread_session


class OnnxEncoder:
    """`embed` through an onnxruntime session that takes normalised (N, 3, H, W) float32 pixels.

    `per_image`: run each image alone. Dynamically quantised graphs pick their activation scales
    from the whole input tensor, so an image's features would change with its batch-mates
    (cosine 0.987 between an image alone and in a pair, for the INT8 CLIP encoder).
    """

    def __init__(self, info: BackboneInfo, path: Path, *, output: str, per_image: bool) -> None:
        self.session = one_thread_session(path)
        self.info = info
        self.input_name = self.session.get_inputs()[0].name
        outputs = [node.name for node in self.session.get_outputs()]
        if output not in outputs:
            raise ModelLoadError(f"{info.name}: {path} has no output {output!r}; it has {outputs}")
        self.output = output
        self.per_image = per_image

    def embed(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 at `info.input_size` -> (N, features) float32."""
        if len(images) == 0:
            return np.zeros((0, self.info.features), np.float32)
        pixels = normalise(images, self.info)
        steps = [pixels[i : i + 1] for i in range(len(pixels))] if self.per_image else [pixels]
        runs = [self.session.run([self.output], {self.input_name: step})[0] for step in steps]
        return np.concatenate(runs).astype(np.float32, copy=False)
