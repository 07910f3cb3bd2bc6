"""The model card: the preprocessing and decision contract that travels with the weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from fakelens.config import INPUT_SIZE
from fakelens.errors import InvalidArgumentError

_EPS = 1e-7


def logit(probability: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probability, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def apply_temperature(probability: np.ndarray, temperature: float) -> np.ndarray:
    """sigmoid(logit(p) / T): T > 1 softens over-confident scores, T = 1 changes nothing."""
    if temperature == 1.0:
        return np.clip(np.asarray(probability, dtype=np.float64), _EPS, 1 - _EPS)
    return 1.0 / (1.0 + np.exp(-logit(probability) / temperature))


@dataclass(frozen=True)
class ModelCard:
    """Everything needed to turn a model's raw output into a verdict.

    `output` says what the sigmoid means. The original notebook's model outputs P(REAL)
    (Keras' alphabetical classes: FAKE=0, REAL=1); `ai_probability` is the single place where
    that becomes the P(AI) users see.
    """

    name: str
    architecture: str
    input_size: tuple[int, int] = INPUT_SIZE
    #: How images reach `input_size` (`data.decode.FITS`): "stretch" (the CIFAKE models),
    #: "crop" (short side resized, centre crop: pretrained backbones), or "route" (`routing`).
    fit: Literal["stretch", "crop", "route"] = "stretch"
    output: Literal["p_real", "p_ai"] = "p_real"
    #: Label "ai" when ai_probability >= threshold.
    threshold: float = 0.5
    #: Temperature applied to the logit before the sigmoid (1.0 = uncalibrated).
    temperature: float = 1.0
    #: Measured figures, free-form, e.g. {"test": {"accuracy": ...}}.
    metrics: dict[str, Any] = field(default_factory=dict)
    #: How it was trained: seed, split, data hash, recipe (to rebuild its validation split).
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.output not in ("p_real", "p_ai"):
            raise InvalidArgumentError(f"card output must be 'p_real' or 'p_ai'; received {self.output!r}")
        if self.fit not in ("stretch", "crop", "route"):
            raise InvalidArgumentError(
                f"card fit must be 'stretch', 'crop' or 'route'; received {self.fit!r}"
            )
        if not 0 <= self.threshold <= 1 or self.temperature <= 0:
            raise InvalidArgumentError(
                "card needs 0 <= threshold <= 1 and temperature > 0; "
                f"received threshold={self.threshold}, temperature={self.temperature}"
            )

    def ai_probability(self, raw: np.ndarray) -> np.ndarray:
        """Map raw sigmoid outputs to calibrated P(AI) in [0, 1]."""
        p = np.asarray(raw, dtype=np.float64).reshape(-1)
        return apply_temperature(1.0 - p if self.output == "p_real" else p, self.temperature)

    def training_target(self, is_ai: np.ndarray) -> np.ndarray:
        """The 0/1 target the model is trained on, in its own output convention."""
        is_ai = np.asarray(is_ai, dtype=np.float32)
        return 1.0 - is_ai if self.output == "p_real" else is_ai

    def labels(self, ai_probability: np.ndarray) -> np.ndarray:
        return np.where(np.asarray(ai_probability) >= self.threshold, "ai", "real")

    def with_updates(self, **changes: Any) -> ModelCard:
        return replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        data = json.loads(text)
        data["input_size"] = tuple(data["input_size"])
        return cls(**data)
