"""What a model file read from disk may hold: the one place for the bounds on untrusted models.

A model file is user input like an image: its card decides how large every image is made
(`input_size`), its archive how much is inflated, its JSON how deep the parser recurses. Each
bound admits the shipped models many times over and refuses, before any work, what would
exhaust the machine. Refusals are `ModelLoadError`s naming the file.
"""

from __future__ import annotations

import json
import zipfile
from typing import Any

from fakelens.errors import ModelLoadError

# === Files ===
#: Largest model file (`.keras` uncompressed, or `.onnx`): 64M float32 weights, about 300
#: times patchres' weights (0.9 MB).
MAX_MODEL_BYTES = 256 * 1024 * 1024
#: Largest JSON in a model file (card, Keras config, probe file): the shipped cards are 3 KB,
#: patchres' Keras config 35 KB, clipprobe with its head 13 KB.
MAX_JSON_BYTES = 1024 * 1024
#: Deepest JSON nesting: the shipped cards nest 6 deep, Keras configs 11, clipprobe.json 5.
#: The parser recurses, so depth is what a hostile file would exhaust.
MAX_JSON_DEPTH = 32

#: Most weights in a Keras architecture, counted before Keras allocates them (it initialises
#: every variable before reading a weight, ~12 bytes each at its peak): 150 times patchres.
MAX_MODEL_PARAMS = 32_000_000
#: Most values one layer may output per image: a 1024 x 1024 x 16 feature map (the shipped
#: models: 14,400). A config resizing images to 30000 x 30000 inside the model would take tens of GB
#: per image at the first prediction.
MAX_LAYER_VALUES = 1024 * 1024 * 16

# === .keras archives (zip), checked from the directory before anything is inflated ===
#: Members: Keras writes 3 (metadata, config, weights), fakelens adds the card.
MAX_ARCHIVE_MEMBERS = 64
#: Largest zip directory, read from its end record before `zipfile` parses every entry of it
#: (100,000 entries take about a second; 3 million fit in a 256 MB file). The shipped: 250 bytes.
MAX_DIRECTORY_BYTES = 1024 * 1024
#: Largest uncompressed/compressed ratio of a member over `RATIO_CHECKED_ABOVE` bytes: Keras
#: stores its weights uncompressed (ratio 1); a zip bomb inflates 1,000 times.
MAX_INFLATE_RATIO = 100
RATIO_CHECKED_ABOVE = 1024 * 1024
#: Compression methods whose inflation `zipfile` bounds by the member's declared size (bzip2
#: and LZMA members are inflated a whole chunk at a time).
ARCHIVE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}

# === Cards ===
#: Smallest and largest side of a model's input, in pixels: the shipped models take 32 and 224.
INPUT_SIDES = (8, 1024)
#: Temperatures a card may hold: positive and finite, with room to spare. Calibration fits
#: within e^-4..e^4 (`fit_temperature`); Platt scaling of a probe can go lower (0.0065 on a
#: test encoder with tiny logits).
TEMPERATURES = (1e-4, 1e4)
#: Longest model name or architecture description.
MAX_NAME_CHARS = 200
#: Largest |weight| or |intercept| of a probe head: fitted heads stay under 10; far larger ones
#: only overflow the sigmoid.
MAX_HEAD_WEIGHT = 1e4

# === Inference ===
#: Most pixels in one batch of prepared images (their float copies inside a model scale with
#: it): 256 images at 224 x 224, so a card with a large input gets smaller batches, not more memory.
MAX_BATCH_PIXELS = 256 * 224 * 224


def check_model_size(source: object, size: int) -> None:
    """Refuse a model file of `size` bytes over `MAX_MODEL_BYTES`, before reading it."""
    if size > MAX_MODEL_BYTES:
        raise ModelLoadError(
            f"{source}: refused: {size:,} bytes, over the {MAX_MODEL_BYTES:,}-byte model limit"
        )


def parse_json(data: str | bytes, source: object, what: str = "its model card") -> Any:
    """`data` parsed as JSON, or a `ModelLoadError` naming `source` if it is over
    `MAX_JSON_BYTES`, nested over `MAX_JSON_DEPTH` (the parser's RecursionError included) or not
    JSON; `what` names the JSON in the message."""
    if len(data) > MAX_JSON_BYTES:
        raise ModelLoadError(f"{source}: {what} is over the {MAX_JSON_BYTES:,}-byte limit; refused")
    too_deep = ModelLoadError(f"{source}: {what} is nested over {MAX_JSON_DEPTH} levels deep; refused")
    try:
        value = json.loads(data)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, integers over the digit limit
        raise ModelLoadError(f"{source}: {what} is not valid JSON ({exc})") from None
    if _deeper_than(value, MAX_JSON_DEPTH):
        raise too_deep
    return value


def shown(value: Any, limit: int = 80) -> str:
    """`repr(value)` cut to `limit` characters, for messages: a hostile file's values can be megabytes."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects nest more than `limit` levels in `value` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            if level > limit:
                return True
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False
