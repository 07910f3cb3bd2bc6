"""Models by name: `create_model("seed")` builds a fresh, compiled Keras model and its card.

Importing the registry does not import Keras: the built-in architectures register themselves
the first time a name is looked up, so the ONNX runtime path stays free of TensorFlow.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fakelens.config import INPUT_SIZE, NOTEBOOK_RECIPE, Recipe
from fakelens.errors import InvalidArgumentError
from fakelens.models.card import ModelCard
from fakelens.models.precision import with_precision

if TYPE_CHECKING:
    import keras

#: Modules whose import registers the built-in architectures.
BUILTIN_ARCHITECTURES = ("fakelens.models.patchres", "fakelens.models.seed")


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: its builder and what its sigmoid output means."""

    name: str
    description: str
    build: Callable[..., keras.Model]
    output: str = "p_real"
    recipe: Recipe = NOTEBOOK_RECIPE


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, description: str, output: str = "p_real", recipe: Recipe = NOTEBOOK_RECIPE):
    """Decorator adding a builder `fn(input_size) -> keras.Model` and its training recipe."""

    def decorator(build: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelSpec(name, description, build, output, recipe)
        return build

    return decorator


def _registry() -> dict[str, ModelSpec]:
    for module in BUILTIN_ARCHITECTURES:
        importlib.import_module(module)
    return _REGISTRY


def available_models() -> dict[str, str]:
    """Registered names -> one-line descriptions."""
    _registry()
    return {name: spec.description for name, spec in sorted(_REGISTRY.items())}


def get_spec(name: str) -> ModelSpec:
    if name not in _registry():
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        available = ", ".join(sorted(_REGISTRY))
        raise InvalidArgumentError(f"Unknown model {name!r}.{hint} Available: {available}.")
    return _REGISTRY[name]


def create_model(
    name: str,
    *,
    input_size: tuple[int, int] = INPUT_SIZE,
    optimizer: keras.optimizers.Optimizer | None = None,
    precision: str = "fp32",
    **overrides: Any,
) -> tuple[keras.Model, ModelCard]:
    """Build and compile model `name` (Adam at its recipe's rate unless `optimizer` is given) to
    compute in `precision` ("fp32" or "bf16", see `precision`); `None` overrides keep the
    builder's defaults.

    Examples:
    >>> model, card = create_model("seed")
    >>> card.input_size, model.output_shape
    ((32, 32), (None, 1))
    >>> card.output  # the original notebook's model outputs P(REAL)
    'p_real'
    """
    import keras

    spec = get_spec(name)
    model = spec.build(input_size=input_size, **{k: v for k, v in overrides.items() if v is not None})
    model = with_precision(model, precision)
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(learning_rate=spec.recipe.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    card = ModelCard(name=name, architecture=name, input_size=input_size, output=spec.output)
    return model, card
