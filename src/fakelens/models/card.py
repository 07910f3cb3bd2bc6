"""The model card: the preprocessing and decision contract that travels with the weights."""

from __future__ import annotations

import json
import numbers
from collections.abc import Callable, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np

from fakelens.config import INPUT_SIZE
from fakelens.data.decode import FITS
from fakelens.errors import InvalidArgumentError, ModelLoadError
from fakelens.models.limits import INPUT_SIDES, MAX_NAME_CHARS, TEMPERATURES, parse_json, shown

_EPS = 1e-7


def logit(probability: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probability, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def apply_temperature(probability: np.ndarray, temperature: float) -> np.ndarray:
    """sigmoid(logit(p) / T): T > 1 softens over-confident scores, T = 1 changes nothing."""
    if temperature == 1.0:
        return np.clip(np.asarray(probability, dtype=np.float64), _EPS, 1 - _EPS)
    with np.errstate(over="ignore"):  # e^x -> inf is the limit wanted: a score of exactly 0
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
        for name, (allowed, expected) in FIELD_RULES.items():
            value = getattr(self, name)
            if not allowed(value):
                raise InvalidArgumentError(f"card {name} must be {expected}; received {shown(value)}")
        if self.fit == "route" and not _tiles(self.input_size, INPUT_SIZE):
            raise InvalidArgumentError(
                f"card fit 'route' needs a square input_size that is a multiple of {INPUT_SIZE}; "
                f"received {self.input_size}"
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
    def from_json(cls, text: str | bytes, source: object = "<card>") -> ModelCard:
        """The card in `text`, read from `source` (named in errors), within `limits`' bounds."""
        return cls.from_dict(parse_json(text, source), source)

    @classmethod
    def from_dict(cls, data: Any, source: object = "<card>") -> ModelCard:
        """The card in parsed JSON: every field present is checked (`FIELD_RULES`), unknown ones
        refused; a `ModelLoadError` names `source` and the field."""
        if not isinstance(data, dict):
            raise ModelLoadError(f"{source}: its model card must be a JSON object; received {shown(data)}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(map(str, set(data) - set(known)))
        missing = [
            n
            for n, f in known.items()
            if f.default is MISSING and f.default_factory is MISSING and n not in data
        ]
        if unknown or missing:
            problem = f"unknown field(s) {shown(unknown)}" if unknown else f"missing field(s) {missing}"
            raise ModelLoadError(f"{source}: its model card is malformed: {problem}")
        values = {key: _as_tuple(value) if key == "input_size" else value for key, value in data.items()}
        try:
            return cls(**values)
        except InvalidArgumentError as exc:
            raise ModelLoadError(f"{source}: its model card is malformed: {exc}") from None

    def signature_mismatch(
        self, inputs: Sequence[Sequence[int | None]], outputs: Sequence[Sequence[int | None]]
    ) -> str | None:
        """Why a model with these input and output shapes (None: any size) cannot take this
        card's batches, (N, height, width, 3) images -> one score each; None when it can."""
        height, width = self.input_size
        if len(inputs) != 1 or len(outputs) != 1:
            return f"it has {len(inputs)} input(s) and {len(outputs)} output(s); fakelens runs one of each"
        (shape,), (output,) = inputs, outputs
        if len(shape) != 4 or any(
            got not in (None, want) for got, want in zip(shape[1:], (height, width, 3))
        ):
            return f"it takes input of shape {list(shape)}, not the card's (batch, {height}, {width}, 3)"
        if shape[0] is not None:
            return f"it takes batches of exactly {shape[0]} image(s); fakelens needs any batch size"
        if len(output) not in (1, 2) or output[0] is not None or any(size != 1 for size in output[1:]):
            return f"its output has shape {list(output)}, not one score per image (batch, 1)"
        return None


def _number(low: float, high: float) -> Callable[[Any], bool]:
    """A real number (not a bool) within [low, high]: NaN and infinities fail."""
    return lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool) and low <= v <= high


def _text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME_CHARS and value.isprintable()


def _size(value: Any) -> bool:
    low, high = INPUT_SIDES
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(side, numbers.Integral) and not isinstance(side, bool) for side in value)
        and all(low <= side <= high for side in value)
    )


def _tiles(size: tuple[int, int], tile: tuple[int, int]) -> bool:
    """Whether `size` is `tile` enlarged by a whole factor (what fit "route" encodes)."""
    factor = size[0] // tile[0]
    return factor >= 1 and size == (tile[0] * factor, tile[1] * factor)


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


#: What each card field may hold, and how to say it: a loaded card is untrusted input, and its
#: input size alone decides how much memory every image takes (`limits`).
FIELD_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "name": (_text, f"printable text of 1 to {MAX_NAME_CHARS} characters"),
    "architecture": (_text, f"printable text of 1 to {MAX_NAME_CHARS} characters"),
    "input_size": (_size, f"[height, width], whole numbers from {INPUT_SIDES[0]} to {INPUT_SIDES[1]}"),
    "fit": (lambda v: isinstance(v, str) and v in FITS, f"one of {', '.join(map(repr, FITS))}"),
    "output": (lambda v: v in ("p_real", "p_ai"), "'p_real' or 'p_ai'"),
    "threshold": (_number(0.0, 1.0), "a number from 0 to 1"),
    "temperature": (_number(*TEMPERATURES), f"a number from {TEMPERATURES[0]:g} to {TEMPERATURES[1]:g}"),
    "metrics": (lambda v: isinstance(v, dict), "a JSON object"),
    "training": (lambda v: isinstance(v, dict), "a JSON object"),
}
