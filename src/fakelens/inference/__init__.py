"""Judging images: a `Detector` (model + card -> calibrated AI probability) and the default
detector that routes CIFAKE-sized images to the CIFAKE model."""

from fakelens.inference.detector import Detector, load_detector
from fakelens.record import Prediction

__all__ = ["Detector", "Prediction", "load_detector"]
