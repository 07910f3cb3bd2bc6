"""The evidence item: one finding in a file's metadata, and which way it points.

Metadata is easy to strip and easy to forge, so evidence is reported beside the pixel score and
never merged into it. `strength` says how much a finding would mean *if genuine*:

- "strong": a generator's own record of the generation (its parameters or workflow), or an
  explicit "made by a trained model" declaration (IPTC `trainedAlgorithmicMedia`).
- "medium": a declared source type or a tool name that usually means what it says.
- "weak": what real cameras write but anyone can copy (camera make/model, lens, capture date).
- "none": context only (a signer's name, a validation state); `points_to` is then "unknown".
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from fakelens.config import MAX_EVIDENCE_VALUE_CHARS

PointsTo = Literal["ai", "real", "unknown"]
Strength = Literal["strong", "medium", "weak", "none"]

#: Tool names that, in a Software / CreatorTool / claim-generator field, mean an image generator.
GENERATOR_NAMES = re.compile(
    r"stable[\s_-]?diffusion|automatic1111|stable-diffusion-webui|sd\.next|novelai|midjourney|"
    r"dall[\s·.-]?e|firefly|comfyui|invokeai|fooocus|imagen|openai|chatgpt|sdxl|leonardo\.ai",
    re.IGNORECASE,
)

#: IPTC Digital Source Type vocabulary (https://cv.iptc.org/newscodes/digitalsourcetype/),
#: used by XMP `Iptc4xmpExt:DigitalSourceType` and by C2PA actions.
DIGITAL_SOURCE_TYPES: dict[str, tuple[PointsTo, Strength]] = {
    "trainedAlgorithmicMedia": ("ai", "strong"),
    "compositeWithTrainedAlgorithmicMedia": ("ai", "medium"),
    "algorithmicMedia": ("ai", "medium"),
    "compositeSynthetic": ("ai", "weak"),
    "digitalCapture": ("real", "medium"),
    "computationalCapture": ("real", "medium"),
    "negativeFilm": ("real", "medium"),
    "positiveFilm": ("real", "medium"),
    "print": ("real", "weak"),
    "minorHumanEdits": ("real", "weak"),
    "compositeCapture": ("real", "weak"),
    "humanEdits": ("unknown", "none"),
    "algorithmicallyEnhanced": ("unknown", "none"),
    "dataDrivenMedia": ("unknown", "none"),
    "digitalArt": ("unknown", "none"),
    "virtualRecording": ("unknown", "none"),
    "screenCapture": ("unknown", "none"),
}


@dataclass(frozen=True)
class Evidence:
    """One finding: `kind` is where it was found (exif, png_text, xmp, c2pa), `key` the field."""

    kind: str
    key: str
    value: str
    points_to: PointsTo
    strength: Strength

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clip(text: str, limit: int = MAX_EVIDENCE_VALUE_CHARS) -> str:
    """`text` without control characters and at most `limit` characters long. Only the kept
    start is examined character by character: values can run to megabytes."""
    text = text.strip()
    head = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text[:limit]).strip()
    return head if len(text) <= limit else head[: limit - 1] + "…"


def software_evidence(kind: str, key: str, value: str) -> Evidence:
    """A tool name: points to AI when it names a known generator, otherwise to nothing. Only the
    kept value is searched (a hostile one of megabytes took a second)."""
    value = clip(value)
    if GENERATOR_NAMES.search(value):
        return Evidence(kind, key, value, "ai", "medium")
    return Evidence(kind, key, value, "unknown", "none")


def source_type_evidence(kind: str, key: str, value: str) -> Evidence:
    """An IPTC digital source type, given as a full URI or a bare term."""
    term = value.strip().rstrip("/").rsplit("/", 1)[-1]
    points_to, strength = DIGITAL_SOURCE_TYPES.get(term, ("unknown", "none"))
    return Evidence(kind, key, clip(value), points_to, strength)
