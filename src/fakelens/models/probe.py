"""A probe model: a frozen backbone and a small head fitted on its features (no TensorFlow).

UniversalFakeDetect (Ojha et al., CVPR 2023): a linear probe on CLIP image features tells
generated images from photos far better on unseen generators than a CNN trained end to end.
The head is a logistic regression on the L2-normalised embedding: 513 numbers that ship in
the package as JSON beside the model card, while the encoder is fetched once
(`models.backbones`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fakelens.errors import InvalidArgumentError, ModelLoadError
from fakelens.fsutil import write_text_atomic
from fakelens.models.backbones import Backbone, BackboneInfo, get_backbone_spec, load_backbone
from fakelens.models.card import ModelCard
from fakelens.models.limits import MAX_HEAD_WEIGHT, MAX_JSON_BYTES, parse_json, shown

FORMAT = "fakelens-probe/1"


@dataclass(frozen=True)
class LinearHead:
    """logit = w . (f / |f|) + b on a backbone's features f."""

    coef: tuple[float, ...]
    intercept: float

    def __post_init__(self) -> None:
        weights = np.asarray([*self.coef, self.intercept], dtype=np.float64)
        if len(self.coef) == 0 or not np.all(np.abs(weights) <= MAX_HEAD_WEIGHT):
            raise InvalidArgumentError(
                f"a probe head needs one or more weights, all finite and within +-{MAX_HEAD_WEIGHT:g}; "
                f"received {len(self.coef)} weight(s), largest |value| {np.max(np.abs(weights)):g}"
            )

    def logits(self, features: np.ndarray) -> np.ndarray:
        # Row by row (not a matrix product, whose summation order varies with the batch's
        # shape): a score is bit for bit the same whatever else is in the batch.
        return (l2_normalised(features) * np.asarray(self.coef, np.float64)).sum(axis=1) + self.intercept


def l2_normalised(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, np.float64)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


#: Probe models that `fakelens train --model NAME` builds: name -> (backbone, description).
PROBE_MODELS = {
    "clipprobe": (
        "clip-vit-b16-int8",
        "Linear probe on frozen CLIP ViT-B/16 features (onnxruntime, no TensorFlow): real-world images",
    ),
}


class ProbeModel:
    """What `Detector` calls: prepared images -> uncalibrated P(AI) (the card calibrates)."""

    #: Zero-padding batches only pays where shapes are traced (Keras); here it costs encoder runs.
    pad_batches = False

    def __init__(self, backbone: Backbone, head: LinearHead) -> None:
        self.backbone = backbone
        self.head = head

    def predict_on_batch(self, images: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.head.logits(self.backbone.embed(images))))


def probe_card(name: str, backbone: str, **fields: Any) -> ModelCard:
    """The card of a probe model: the backbone's input size, crop fit, P(AI) output."""
    info = get_backbone_spec(backbone).info
    return ModelCard(
        name=name,
        architecture=f"probe:{backbone}",
        input_size=info.input_size,
        fit="crop",
        output="p_ai",
        **fields,
    )


def save_probe(path: str | os.PathLike[str], card: ModelCard, backbone: str, head: LinearHead) -> None:
    info = get_backbone_spec(backbone).info
    record = {
        "format": FORMAT,
        "backbone": {"name": backbone, "sha256": info.sha256},
        "head": asdict(head),
        "card": json.loads(card.to_json()),
    }
    write_text_atomic(path, json.dumps(record, indent=1) + "\n")


def read_probe(path: str | os.PathLike[str]) -> tuple[ModelCard, str, LinearHead]:
    """The card, backbone name and head of a saved probe, checked against the registered
    backbone and `limits`' bounds before anything is loaded."""
    path = Path(path)
    if not path.is_file():  # nor a FIFO or a device, which reading would wait on
        raise ModelLoadError(f"{path}: no such model file")
    try:
        with path.open("rb") as file:
            data = file.read(MAX_JSON_BYTES + 1)
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read the model ({exc.strerror or exc})") from None
    record = parse_json(data, path, "the probe model file")
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else record
        raise ModelLoadError(f"{path}: not a fakelens probe model (format {shown(found)})")
    try:
        backbone, sha256 = record["backbone"]["name"], record["backbone"].get("sha256")
        if not isinstance(backbone, str):
            raise TypeError(f"backbone name {shown(backbone)}")
        head = LinearHead(_numbers(record["head"]["coef"]), *_numbers([record["head"]["intercept"]]))
    except (InvalidArgumentError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise ModelLoadError(f"{path}: malformed probe model ({shown(exc, 200)})") from None
    try:
        info = get_backbone_spec(backbone).info
    except InvalidArgumentError as exc:
        raise ModelLoadError(f"{path}: {exc}") from None
    card = ModelCard.from_dict(record.get("card"), path)
    if sha256 != info.sha256 or len(head.coef) != info.features:
        raise ModelLoadError(
            f"{path}: its head was fitted on another version of {backbone} "
            f"(sha256 {shown(sha256)}, {len(head.coef)} features; this one has "
            f"sha256 {info.sha256}, {info.features} features); train it again"
        )
    _check_card(path, card, info)
    return card, backbone, head


def _numbers(values: Any) -> tuple[float, ...]:
    """`values` as floats, if it is a list of JSON numbers (not strings such as "nan", not bools)."""
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise TypeError(f"expected a list of numbers; received {shown(values)}")
    return tuple(float(v) for v in values)


def _check_card(path: Path, card: ModelCard, info: BackboneInfo) -> None:
    """The card must prepare images as the backbone takes them: a wrong input size would reach
    the encoder and fail there, at the first prediction."""
    got, wanted = ((c.architecture, c.input_size, c.output) for c in (card, probe_card(card.name, info.name)))
    if got != wanted:
        raise ModelLoadError(
            f"{path}: its card's (architecture, input_size, output) {got} do not match its backbone "
            f"{info.name}: {wanted}"
        )


def load_probe(path: str | os.PathLike[str]) -> tuple[ProbeModel, ModelCard]:
    card, backbone, head = read_probe(path)
    return ProbeModel(load_backbone(backbone), head), card
