"""What a file declares about how it was made: one short line beside the pixel score.

Most metadata is circumstantial (a camera make, a tool's name). A few findings are the file
*stating its own origin*; this module is the one place that decides which:

- an IPTC digital source type that says how the image was made, in XMP
  (`Iptc4xmpExt:DigitalSourceType`) or in a C2PA action's `digitalSourceType`: the AI terms
  (`trainedAlgorithmicMedia`, `compositeWithTrainedAlgorithmicMedia`, `algorithmicMedia`) and
  the capture terms (`digitalCapture`, `computationalCapture`, `negativeFilm`, `positiveFilm`);
- a C2PA manifest whose claim generator names a known image generator;
- a generator's own record of the generation: its parameters or workflow in PNG text chunks
  (SD WebUI `parameters`, ComfyUI, InvokeAI, Fooocus) or in EXIF (SD WebUI JPEGs).

`declaration` turns a file's findings into `None` (nothing declared) or one line that starts
with the direction, `ai: ` or `real: `, then says where and what, source by source:

    ai: C2PA manifest (claim generator 'Adobe Firefly 2.0', digital source type
        trainedAlgorithmicMedia, validation Valid)
    ai: PNG text (Stable Diffusion WebUI parameters)
    real: IPTC digital source type digitalCapture (XMP)

The direction is `ai` when any declaration says AI (a capture later composited with generated
content is AI-edited), else `real`. A declaration is as forgeable as the metadata it sits in
(docs/explain.md); it is reported beside `ai_probability`, never merged into it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fakelens.evidence.finding import DIGITAL_SOURCE_TYPES, Evidence, clip
from fakelens.evidence.metadata import GENERATOR_TEXT_KEYS

__all__ = ["DECLARING_SOURCE_TYPES", "declaration"]

#: Digital source types that declare how an image was made (and which way they point).
DECLARING_SOURCE_TYPES = {
    term: points_to
    for term, (points_to, strength) in DIGITAL_SOURCE_TYPES.items()
    if points_to != "unknown" and strength in ("strong", "medium")
}
#: The longest declaration kept; it is a summary, the findings hold the detail.
MAX_CHARS = 300
_SOURCES = ("c2pa", "xmp", "png_text", "exif")


def declaration(findings: Iterable[Evidence | Mapping[str, Any]]) -> str | None:
    """The file's declaration of how it was made, from its evidence findings; None if none.

    Findings read back from a result file may be anything JSON holds: what is not a mapping
    is no finding, and declares nothing."""
    items = [item.to_dict() if isinstance(item, Evidence) else item for item in findings]
    items = [item for item in items if isinstance(item, Mapping)]
    directions: list[str] = []
    parts: dict[str, list[str]] = {source: [] for source in _SOURCES}
    for item in items:
        stated = _declares(item)
        if stated is not None:
            directions.append(stated[0])
            parts[item["kind"]].append(stated[1])
    if not directions:
        return None
    direction = "ai" if "ai" in directions else "real"
    described = [
        text
        for text in (
            _c2pa_part(items, parts["c2pa"]),
            _listed("IPTC digital source type", parts["xmp"], " (XMP)"),
            f"PNG text ({', '.join(_unique(parts['png_text']))})" if parts["png_text"] else "",
            f"EXIF ({', '.join(_unique(parts['exif']))})" if parts["exif"] else "",
        )
        if text
    ]
    return clip(f"{direction}: {'; '.join(described)}", MAX_CHARS)


def _declares(item: Mapping[str, Any]) -> tuple[str, str] | None:
    """(direction, what) when `item` is a declaration, else None."""
    kind, key = item.get("kind"), str(item.get("key", ""))
    value, points_to = str(item.get("value", "")), item.get("points_to")
    if kind in ("xmp", "c2pa") and key.lower().endswith("digitalsourcetype"):
        term = value.strip().rstrip("/").rsplit("/", 1)[-1]
        direction = DECLARING_SOURCE_TYPES.get(term)
        return None if direction is None else (direction, term)
    if points_to != "ai":
        return None
    if kind == "c2pa" and key == "claim_generator":
        return "ai", ""  # named in the C2PA part, beside any source type
    if kind == "png_text" and key in GENERATOR_TEXT_KEYS:
        return "ai", GENERATOR_TEXT_KEYS[key]
    if kind == "exif" and key.endswith("(generator parameters)"):
        return "ai", f"{key.split(' ', 1)[0]}: generator parameters"
    return None


def _c2pa_part(items: list[Mapping[str, Any]], terms: list[str]) -> str:
    """The manifest's claim generator, declared source types and validation state."""
    if not terms:
        return ""
    found = {str(item.get("key")): str(item.get("value", "")) for item in items if item.get("kind") == "c2pa"}
    details = []
    if found.get("claim_generator"):
        details.append(f"claim generator {found['claim_generator']!r}")
    declared = _unique(t for t in terms if t)
    if declared:
        details.append(f"digital source type{'s' if len(declared) > 1 else ''} {', '.join(declared)}")
    if found.get("validation_state"):
        details.append(f"validation {found['validation_state'].split(';', 1)[0]}")
    return f"C2PA manifest ({', '.join(details)})"


def _listed(what: str, terms: list[str], where: str) -> str:
    return f"{what} {', '.join(_unique(terms))}{where}" if terms else ""


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
