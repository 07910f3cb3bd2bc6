"""fakelens: tell AI-generated images from real photographs.

>>> import fakelens
>>> detector = fakelens.load_detector("seed")
>>> detector.predict(["photo.jpg"])[0].label
"""

from __future__ import annotations

from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from fakelens.errors import (
    DatasetLayoutError,
    FakelensError,
    ImageDecodeError,
    ModelLoadError,
)

__version__ = version("fakelens")

if TYPE_CHECKING:
    from fakelens.inference import Detector, Prediction, load_detector

__all__ = [
    "DatasetLayoutError",
    "Detector",
    "FakelensError",
    "ImageDecodeError",
    "ModelLoadError",
    "Prediction",
    "__version__",
    "load_detector",
]


def __getattr__(name: str) -> Any:
    # TensorFlow takes seconds to import: load it only when a detector is asked for.
    if name in ("Detector", "Prediction", "load_detector"):
        from fakelens import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'fakelens' has no attribute {name!r}")
