"""Export a fakelens Keras model to ONNX for the light runtime (see `runtime`).

The exported graph carries the calibration (temperature, and P(REAL) -> P(AI) where the model
outputs P(REAL)) and takes uint8 pixels at the card's input size; the card goes into the
file's metadata. Every export is checked against the Keras model before it is published.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from fakelens.errors import InvalidArgumentError, ModelLoadError
from fakelens.fsutil import atomic_path
from fakelens.models.card import ModelCard
from fakelens.models.runtime import CARD_KEY, load_onnx

FORMATS = ("onnx",)
#: Largest |ONNX - Keras| difference in P(AI) accepted on the export's probe batch.
TOLERANCE = 1e-4
_EPS = 1e-7


class ExportError(ModelLoadError):
    """A model could not be exported, or the export disagrees with the Keras model."""


def calibrated_graph(model, card: ModelCard):
    """A Keras model: uint8 (N, H, W, 3) at the card's input size -> calibrated P(AI), (N, 1).

    The Resizing layer is left out: fakelens resizes with Pillow before any model, so both
    backends see identical pixels. The sigmoid output becomes P(AI) as
    `ModelCard.ai_probability` computes it, in float32.
    """
    import keras
    from keras import ops

    try:
        body = keras.Model(model.get_layer("rescale").input, model.output)
    except ValueError:
        raise ExportError(
            f"{card.name}: expected the model to start with fakelens' resize/rescale layers"
        ) from None
    image = keras.Input((*card.input_size, 3), dtype="uint8", name="image")
    p = ops.clip(body(ops.cast(image, "float32")), _EPS, 1 - _EPS)
    logit = ops.log(p) - ops.log(1.0 - p)  # no Log1p in the ONNX opsets tf2onnx targets
    if card.output == "p_real":
        logit = -logit
    return keras.Model(image, ops.sigmoid(logit / card.temperature), name=f"{card.name}_ai_probability")


def export_model(
    model_path: str | os.PathLike[str], out: str | os.PathLike[str], *, fmt: str = "onnx", trust: bool = False
) -> Path:
    """Write `model_path` (a `.keras` file or shipped name) as `out`; returns `out`."""
    if fmt not in FORMATS:
        raise InvalidArgumentError(f"--format must be one of {', '.join(FORMATS)}; received {fmt!r}")
    out = Path(out)
    if out.suffix != ".onnx":
        raise InvalidArgumentError(f"ONNX files end in .onnx; received {out}")
    try:
        import onnx
        import tf2onnx  # noqa: F401  (Keras' exporter needs it)
    except ImportError:
        raise ExportError("exporting needs tf2onnx and onnx; pip install 'fakelens[export]'") from None
    from fakelens.inference.detector import load_detector

    detector = load_detector(model_path, trust=trust, backend="keras")
    from fakelens.models.probe import ProbeModel

    if isinstance(detector.model, ProbeModel):
        raise ExportError(
            f"{model_path}: {detector.name} already runs on onnxruntime alone (an ONNX encoder and a "
            "513-number head); export writes Keras models as ONNX"
        )
    graph = calibrated_graph(detector.model, detector.card)
    spec = [graph.inputs[0]]
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # Keras' tf2onnx patch probes np.object
        graph.export(str(tmp), format="onnx", verbose=False, input_signature=spec)
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(proto, {CARD_KEY: detector.card.to_json()})
        onnx.save(proto, str(tmp))
        _check_agreement(detector, tmp)
    return out


def _check_agreement(detector, path: Path, count: int = 64) -> None:
    """Score a fixed random batch with both; refuse the export if they differ."""
    images = np.random.default_rng(0).integers(0, 256, (count, *detector.card.input_size, 3), dtype=np.uint8)
    model, card = load_onnx(path)
    exported = card.ai_probability(model.predict_on_batch(images))
    difference = float(np.max(np.abs(exported - detector.predict_proba(images))))
    if not difference <= TOLERANCE:
        raise ExportError(
            f"{detector.name}: the ONNX export differs from the Keras model by {difference:.2e} "
            f"(over {TOLERANCE:.0e}); not written"
        )
