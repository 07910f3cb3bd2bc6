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

from fakelens.errors import ModelLoadError
from fakelens.fsutil import write_text_atomic
from fakelens.models.backbones import Backbone, get_backbone_spec, load_backbone
from fakelens.models.card import ModelCard

FORMAT = "fakelens-probe/1"


@dataclass(frozen=True)
class LinearHead:
    """logit = w . (f / |f|) + b on a backbone's features f."""

    coef: tuple[float, ...]
    intercept: float

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
    """The card, backbone name and head of a saved probe, checked against the registered backbone."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("format") != FORMAT:
            raise ModelLoadError(f"{path}: not a fakelens probe model (format {record.get('format')!r})")
        backbone = record["backbone"]["name"]
        head = LinearHead(tuple(float(x) for x in record["head"]["coef"]), float(record["head"]["intercept"]))
        card = ModelCard.from_json(json.dumps(record["card"]))
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read the model ({exc.strerror or exc})") from None
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise ModelLoadError(f"{path}: malformed probe model ({exc!r})") from None
    info = get_backbone_spec(backbone).info
    if record["backbone"].get("sha256") != info.sha256 or len(head.coef) != info.features:
        raise ModelLoadError(
            f"{path}: its head was fitted on another version of {backbone} "
            f"(sha256 {record['backbone'].get('sha256')}, {len(head.coef)} features; this one has "
            f"sha256 {info.sha256}, {info.features} features); train it again"
        )
    return card, backbone, head


def load_probe(path: str | os.PathLike[str]) -> tuple[ProbeModel, ModelCard]:
    card, backbone, head = read_probe(path)
    return ProbeModel(load_backbone(backbone), head), card
