"""Save and load a model with its card, as one `.keras` file, atomically and in safe mode.

The card is stored as an extra member of the `.keras` zip, which Keras ignores, so the file
still loads with plain `keras.saving.load_model`.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import keras

from fakelens.errors import InvalidArgumentError, ModelLoadError
from fakelens.fsutil import atomic_path
from fakelens.models.card import ModelCard

CARD_MEMBER = "fakelens_card.json"


def save_model(model: keras.Model, card: ModelCard, path: str | os.PathLike[str]) -> Path:
    """Write `model` and `card` to `path` (a `.keras` file); never leaves a half-written file."""
    path = Path(path)
    if path.suffix != ".keras":
        raise InvalidArgumentError(f"model files end in .keras; received {path}")
    with atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(CARD_MEMBER, card.to_json())
    return path


def read_card(path: str | os.PathLike[str]) -> ModelCard:
    """The card of a saved model, without loading the weights."""
    try:
        with zipfile.ZipFile(path) as archive:
            text = archive.read(CARD_MEMBER).decode("utf-8") if CARD_MEMBER in archive.namelist() else None
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path}: not a readable fakelens .keras model ({exc})") from None
    if text is None:
        raise ModelLoadError(
            f"{path}: this .keras file has no fakelens model card; train or export models with "
            "fakelens so that the card (input size, output meaning, threshold) travels with them."
        )
    try:
        return ModelCard.from_json(text)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelLoadError(f"{path}: its model card is malformed ({exc!r})") from None


def load_model(
    path: str | os.PathLike[str], *, trust: bool = False, compile: bool = True
) -> tuple[keras.Model, ModelCard]:
    """Load a model saved by `save_model`.

    Keras' safe mode refuses Lambda layers and other code embedded in the file; `trust=True`
    lifts that, for files from a source the user trusts. `compile=False` skips the optimizer,
    which inference does not need.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file")
    card = read_card(path)
    try:
        model = keras.saving.load_model(path, safe_mode=not trust, compile=compile)
    except Exception as exc:  # Keras raises many types for bad, unsafe or foreign files
        raise ModelLoadError(_load_failure(path, exc, trust)) from None
    return model, card


def _load_failure(path: Path, exc: Exception, trust: bool) -> str:
    """Why a file did not load, in the user's terms: Keras' own messages name `safe_mode=False`
    and its registry, which a CLI user cannot act on."""
    text = str(exc)
    if not trust and "safe_mode" in text:
        return (
            f"{path}: refused: the file holds Python code (a Lambda layer or function) that would run "
            "while loading. Load it only if you trust where it came from: pass --trust-model "
            "(trust=True in Python)."
        )
    unknown = re.search(r"Could not locate (class|function) '([^']+)'", text)
    if unknown:
        return (
            f"{path}: refused: it needs the custom {unknown.group(1)} {unknown.group(2)!r}, which fakelens "
            "does not provide, so it came from elsewhere. Only models built from fakelens' registry "
            "(`fakelens models`) load."
        )
    return f"{path}: Keras could not load the model: {exc}"
