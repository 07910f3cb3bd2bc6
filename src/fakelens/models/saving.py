"""Save and load a model with its card, as one `.keras` file, atomically and in safe mode.

The card is stored as an extra member of the `.keras` zip, which Keras ignores, so the file
still loads with plain `keras.saving.load_model`. Reading and checking a card does not import
Keras: a hostile file is refused before TensorFlow loads.
"""

from __future__ import annotations

import math
import os
import re
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fakelens.errors import InvalidArgumentError, ModelLoadError
from fakelens.fsutil import atomic_path
from fakelens.models.card import ModelCard
from fakelens.models.limits import (
    ARCHIVE_METHODS,
    MAX_ARCHIVE_MEMBERS,
    MAX_DIRECTORY_BYTES,
    MAX_INFLATE_RATIO,
    MAX_JSON_BYTES,
    MAX_LAYER_VALUES,
    MAX_MODEL_BYTES,
    MAX_MODEL_PARAMS,
    RATIO_CHECKED_ABOVE,
    check_model_size,
    parse_json,
    shown,
)

if TYPE_CHECKING:
    import keras

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
    """The card of a saved model, without loading the weights or importing Keras; the archive's
    directory is checked first (`_check_archive`), so nothing is inflated from a file that would
    not load."""
    if not Path(path).is_file():  # nor a FIFO or a device, which reading would wait on
        raise ModelLoadError(f"{path}: no such model file")
    missing = (
        "this .keras file has no fakelens model card; train or export models with fakelens so "
        "that the card (input size, output meaning, threshold) travels with them."
    )
    return ModelCard.from_dict(_read_json(path, CARD_MEMBER, "its model card", missing), path)


def _read_json(path: str | os.PathLike[str], member: str, what: str, missing: str) -> Any:
    """JSON member `member` of the archive at `path` (refused with `missing` if it has none),
    within `limits`: inflated no further than `MAX_JSON_BYTES` plus one."""
    try:
        _check_directory(path)
        with zipfile.ZipFile(path) as archive:
            _check_archive(path, archive)
            if member not in archive.namelist():
                raise ModelLoadError(f"{path}: {missing}")
            with archive.open(member) as file:
                data = file.read(MAX_JSON_BYTES + 1)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise ModelLoadError(f"{path}: not a readable fakelens .keras model ({exc})") from None
    return parse_json(data, path, what)


def _check_directory(path: str | os.PathLike[str]) -> None:
    """Refuse a file over `MAX_MODEL_BYTES`, or whose zip directory is over `MAX_DIRECTORY_BYTES`
    or in zip64 form (no model needs it), from the end record alone, as `zipfile` finds it."""
    with open(path, "rb") as file:
        size = file.seek(0, os.SEEK_END)
        check_model_size(path, size)
        file.seek(max(0, size - 22 - 0xFFFF))  # the end record, and a comment of up to 64 KiB
        tail = file.read()
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) < end + 22:
        return  # not a zip: zipfile says so
    (directory,) = struct.unpack_from("<I", tail, end + 12)
    if tail[max(0, end - 20) : end - 16] == b"PK\x06\x07" or directory > MAX_DIRECTORY_BYTES:
        raise ModelLoadError(
            f"{path}: refused: its zip directory is zip64 or over {MAX_DIRECTORY_BYTES:,} bytes "
            f"({directory:,}); a model has a few members"
        )


def _check_archive(path: str | os.PathLike[str], archive: zipfile.ZipFile) -> None:
    """Refuse, from the zip's directory alone, an archive that would inflate beyond `limits`:
    too many members, too many bytes in all, a member inflating like a zip bomb, or compressed
    in a way whose inflation is not bounded."""
    members = archive.infolist()
    if len(members) > MAX_ARCHIVE_MEMBERS:
        raise ModelLoadError(
            f"{path}: refused: {len(members):,} members (a model has at most {MAX_ARCHIVE_MEMBERS})"
        )
    total = sum(member.file_size for member in members)
    if total > MAX_MODEL_BYTES:
        raise ModelLoadError(
            f"{path}: refused: it inflates to {total:,} bytes, over the {MAX_MODEL_BYTES:,}-byte model limit"
        )
    for member in members:
        if member.flag_bits & 0x1:
            raise ModelLoadError(f"{path}: refused: member {shown(member.filename)} is encrypted")
        if member.compress_type not in ARCHIVE_METHODS:
            raise ModelLoadError(
                f"{path}: refused: member {shown(member.filename)} uses compression method "
                f"{member.compress_type}; models use {' or '.join(ARCHIVE_METHODS.values())}"
            )
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > RATIO_CHECKED_ABOVE and ratio > MAX_INFLATE_RATIO:
            raise ModelLoadError(
                f"{path}: refused: member {shown(member.filename)} inflates {ratio:,.0f} times "
                f"(over {MAX_INFLATE_RATIO}), as a zip bomb does"
            )


def load_model(
    path: str | os.PathLike[str], *, trust: bool = False, compile: bool = True
) -> tuple[keras.Model, ModelCard]:
    """Load a model saved by `save_model`.

    Keras' safe mode refuses Lambda layers and other code embedded in the file; `trust=True`
    lifts that, for files from a source the user trusts. `compile=False` skips the optimizer,
    which inference does not need. The architecture is sized (`_architecture_size`) before Keras
    builds it for real, and the model's inputs and outputs are checked against the card.
    """
    import keras

    path = Path(path)
    card = read_card(path)
    config = _read_json(path, "config.json", "its Keras config", "no config.json: not a Keras model")
    try:
        with _quiet_keras():
            params, values = _architecture_size(config, card, trust)
    except Exception as exc:  # Keras raises many types for bad, unsafe or foreign files
        raise ModelLoadError(_load_failure(path, exc, trust)) from None
    if params > MAX_MODEL_PARAMS or values > MAX_LAYER_VALUES:
        raise ModelLoadError(
            f"{path}: refused: its architecture has {params:,} weights (at most {MAX_MODEL_PARAMS:,}) "
            f"and a layer of {values:,} values per image (at most {MAX_LAYER_VALUES:,})"
        )
    try:
        with _quiet_keras():
            model = keras.saving.load_model(path, safe_mode=not trust, compile=compile)
        mismatch = card.signature_mismatch(
            [tuple(x.shape) for x in model.inputs], [tuple(x.shape) for x in model.outputs]
        )
    except Exception as exc:  # as above
        raise ModelLoadError(_load_failure(path, exc, trust)) from None
    if mismatch:
        raise ModelLoadError(f"{path}: refused: the model disagrees with its card: {mismatch}")
    return model, card


def _architecture_size(config: Any, card: ModelCard, trust: bool) -> tuple[int, int]:
    """(weights, largest layer output per image) of the architecture in `config` (a Keras
    config.json) taking images at the card's input size.

    Keras creates and initialises every variable of an architecture before it reads a weight,
    so a config declaring a layer of ten million units takes gigabytes before anything can
    disagree. Here the model is built in a stateless scope with its variables deferred, then
    the deferred variables are dropped (Keras would initialise them at its next symbolic call).
    """
    import keras
    from keras.src.backend.common import global_state  # where Keras keeps deferred variables

    if not isinstance(config, dict):
        raise ValueError(f"config.json holds {shown(config)}, not a Keras model config")
    config.pop("compile_config", None)  # the optimizer's and metrics' state: not architecture
    for layer in config.get("config", {}).get("layers", []):
        shape = layer["config"].get("batch_shape") if layer.get("class_name") == "InputLayer" else None
        if isinstance(shape, list) and len(shape) == 4:  # unknown sides: the card's, so sizes are known
            shape[1:3] = [given or side for given, side in zip(shape[1:3], card.input_size)]
    try:
        with keras.StatelessScope(initialize_variables=False):
            model = keras.saving.deserialize_keras_object(config, safe_mode=not trust)
        outputs = [tensor for layer in model.layers for tensor in keras.tree.flatten(layer.output)]
        return model.count_params(), max(math.prod(d or 1 for d in t.shape[1:]) for t in outputs)
    finally:
        global_state.set_global_attribute("uninitialized_variables", [])


@contextmanager
def _quiet_keras() -> Iterator[None]:
    """Keras' warnings while loading (variables skipped, containers not found) name its
    internals: a user can act only on the error, if one follows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


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
    return f"{path}: Keras could not load the model: {' '.join(text.split())[:500]}"
