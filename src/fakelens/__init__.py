"""fakelens: tell AI-generated images from real photographs.

Examples:
>>> import fakelens
>>> detector = fakelens.load_detector()  # the shipped default
>>> detector.predict(["photo.jpg"])[0].label
'ai'
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from fakelens.errors import (
    DatasetLayoutError,
    FakelensError,
    ImageDecodeError,
    ModelLoadError,
)

# TensorFlow turns its oneDNN kernels on only for CPUs with AVX-512; on AVX2 machines such as this
# project's they train and infer about 1.3x faster (docs/architecture.md). Set before anything
# imports TensorFlow, which reads it once; an explicit TF_ENABLE_ONEDNN_OPTS=0 still wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

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
    if name == "__version__":  # importlib.metadata costs tens of ms of every command's start
        from importlib.metadata import version

        return version("fakelens")
    raise AttributeError(f"module 'fakelens' has no attribute {name!r}")
