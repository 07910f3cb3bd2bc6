"""Read the evidence an image file carries about itself: EXIF, PNG text chunks, XMP, C2PA.

Nothing here is trusted blindly: every finding says which way it points and how strongly, and
all of it is easy to strip or forge (see docs/explain.md).

Every file is hostile until read. Only the image header goes through Pillow; EXIF fields, PNG
chunks (before or after the pixels, which are never decoded) and XMP are read here, with bounds
on the work itself (`config.MAX_EVIDENCE_*`: findings per file, bytes of any one text); a
finding with the key "truncated" says what a bound left unread. Whatever a reader raises
becomes a finding with the key "unreadable"; `read_evidence` raises nothing but
`ImageDecodeError`, for files that are not readable images.

PNG text keys recognised as a generator's own record (points to AI, strong):

| key | written by |
| --- | --- |
| `parameters` | Stable Diffusion WebUI (AUTOMATIC1111), Forge, SD.Next, Fooocus |
| `prompt`, `workflow` | ComfyUI (the node graph as JSON) |
| `invokeai_metadata`, `invokeai_graph`, `sd-metadata`, `Dream` | InvokeAI |
| `fooocus_scheme` | Fooocus |
| `Comment` with `Software: NovelAI` | NovelAI (its `Software`/`Source` keys name it) |
"""

from __future__ import annotations

import json
import re
import struct
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from PIL import Image

from fakelens.config import MAX_EVIDENCE_FINDINGS, MAX_EVIDENCE_TEXT_BYTES
from fakelens.data.bounds import MAX_PNG_CHUNKS, png_chunks
from fakelens.data.decode import ImageInput, input_bytes, open_image
from fakelens.errors import ImageDecodeError
from fakelens.evidence.finding import (
    Evidence,
    clip,
    software_evidence,
    source_type_evidence,
)
from fakelens.evidence.provenance import c2pa_evidence

__all__ = ["Evidence", "evidence_dicts", "read_evidence"]

# Pillow warns ("Corrupt EXIF data", "Tag data larger than file"...) about the file it parses,
# which is the file's own problem: its findings or its error say so. Filtered for good, not in
# `warnings.catch_warnings()`, which is not thread-safe: scans read evidence on several threads.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")

_EXIF_IFD = 0x8769
#: (IFD, tag) -> (name, points_to, strength) for plain camera fields.
_CAMERA_TAGS = {
    (0, 271): ("Make", "real", "weak"),
    (0, 272): ("Model", "real", "weak"),
    (_EXIF_IFD, 42035): ("LensMake", "real", "weak"),
    (_EXIF_IFD, 42036): ("LensModel", "real", "weak"),
    (_EXIF_IFD, 36867): ("DateTimeOriginal", "real", "weak"),
    (0, 306): ("DateTime", "unknown", "none"),
}
_SOFTWARE_TAG = 305
_USER_COMMENT_TAG = 37510
_DESCRIPTION_TAG = 270
#: Bytes per value of the TIFF field types read: text is BYTE, ASCII or UNDEFINED; the Exif
#: IFD's offset is LONG or IFD (LONG8 or IFD8 in BigTIFF).
_TEXT_TYPES = {1: 1, 2: 1, 7: 1}
_OFFSET_TYPES = {4: 4, 13: 4, 16: 8, 18: 8}
#: The EXIF fields read, by IFD (0 or the Exif IFD): tag -> the types accepted.
_EXIF_FIELDS = {
    0: {
        **dict.fromkeys([271, 272, 306, _SOFTWARE_TAG, _DESCRIPTION_TAG], _TEXT_TYPES),
        _EXIF_IFD: _OFFSET_TYPES,
    },
    _EXIF_IFD: dict.fromkeys([42035, 42036, 36867, _USER_COMMENT_TAG], _TEXT_TYPES),
}
#: The most entries a classic TIFF IFD can hold; a BigTIFF one may claim billions.
_MAX_IFD_ENTRIES = 0xFFFF

GENERATOR_TEXT_KEYS = {
    "parameters": "Stable Diffusion WebUI parameters",
    "prompt": "ComfyUI prompt",
    "workflow": "ComfyUI workflow",
    "invokeai_metadata": "InvokeAI metadata",
    "invokeai_graph": "InvokeAI graph",
    "sd-metadata": "InvokeAI metadata",
    "Dream": "InvokeAI (dream) command",
    "fooocus_scheme": "Fooocus metadata scheme",
}
_SOFTWARE_TEXT_KEYS = ("Software", "Source", "CreatorTool")
_PNG_XMP_KEY = "XML:com.adobe.xmp"
#: ImageMagick's PNG text holding EXIF as hex.
_PNG_EXIF_KEY = "Raw profile type exif"
#: The PNG text chunks read (the first of each key), out of any number a file may hold.
_PNG_TEXT_KEYS = {*GENERATOR_TEXT_KEYS, *_SOFTWARE_TEXT_KEYS, _PNG_XMP_KEY, _PNG_EXIF_KEY}
#: What a generator's parameter text looks like (A1111's "Steps: 20, Sampler: Euler a, ...").
_SD_STEPS = re.compile(r"\bSteps: \d+")
_XMP_SOURCE_TYPE = re.compile(
    r"""DigitalSourceType(?:\s*=\s*["']([^"']{1,500})["']"""
    r"""|[^>]{0,200}?rdf:resource\s*=\s*["']([^"']{1,500})["']"""
    r"""|\s*>\s*([^<\s][^<]{0,499}))"""
)
#: The element's value starts at its first non-space character, so that a run of spaces cannot
#: be split between `\s*` and the value in every possible way.
_XMP_CREATOR_TOOL = re.compile(
    r"""CreatorTool(?:\s*=\s*["']([^"']{1,500})["']|\s*>\s*([^<\s][^<]{0,499})<)"""
)


def read_evidence(data: ImageInput, *, name: str | None = None) -> list[Evidence]:
    """Every finding in the file's metadata, in the order EXIF, PNG text, XMP, C2PA.

    `data` is a path or the file's bytes. Raises `ImageDecodeError` only, for files that are
    unreadable or not images. Metadata inside a readable image that cannot be read becomes a
    finding with the key "unreadable". Reading is bounded (`config.MAX_EVIDENCE_*`): a finding
    with the key "truncated" says what was not read.
    """
    label, raw = input_bytes(data, name)
    try:
        with open_image(raw, label) as image:
            fmt, info = image.format, dict(image.info)
    except ImageDecodeError:
        raise
    except Exception as exc:  # Pillow's header parsers raise arbitrary errors on hostile data
        raise ImageDecodeError(label, f"unreadable image header ({_failure(exc)})") from None
    png = _PngMetadata()
    walked = list(_guarded("png_text", lambda: _read_png(raw, png))) if fmt == "PNG" else []
    readers: list[tuple[str, Callable[[], Iterable[Evidence]]]] = [
        ("exif", lambda: _exif_evidence(_exif_bytes(fmt, info, raw, png))),
        ("png_text", lambda: [*_text_evidence(png.texts), *walked]),
        ("xmp", lambda: _xmp_evidence(png.texts.get(_PNG_XMP_KEY) or info.get("xmp") or b"")),
        ("c2pa", lambda: c2pa_evidence(raw, Image.MIME.get(fmt or ""))),
    ]
    # A field present but empty (`CreatorTool=""`) says nothing: no finding.
    return _capped(item for kind, read in readers for item in _guarded(kind, read) if item.value)


def evidence_dicts(data: ImageInput, *, name: str | None = None) -> list[dict[str, str]]:
    """`read_evidence` as plain dicts for result records; [] for a file that is not a readable
    image (its record already says why)."""
    try:
        return [item.to_dict() for item in read_evidence(data, name=name)]
    except ImageDecodeError:
        return []


def _guarded(kind: str, read: Callable[[], Iterable[Evidence]]) -> Iterator[Evidence]:
    """`read()`'s findings; whatever it raises becomes one last finding of `kind`.

    Deliberately broad, here only: the parsers under it (Pillow's, zlib, json, c2pa) raise
    arbitrary exceptions on hostile data (AssertionError, struct.error, RecursionError,
    MemoryError...), and one damaged field must cost neither the file's other findings nor, in a
    scan or a request, the other files.
    """
    try:
        yield from read()
    except Exception as exc:
        yield Evidence(
            kind, "unreadable", clip(f"damaged metadata skipped ({_failure(exc)})"), "unknown", "none"
        )


def _failure(exc: Exception) -> str:
    """A short reason for an exception: what it means for the two that need saying."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, MemoryError):
        return "too large to hold in memory"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _capped(findings: Iterable[Evidence]) -> list[Evidence]:
    """The distinct findings, at most `MAX_EVIDENCE_FINDINGS`, then one saying there were more.

    The readers are lazy, so nothing past the cap is even parsed.
    """
    kept: dict[Evidence, None] = {}
    for item in findings:
        if len(kept) == MAX_EVIDENCE_FINDINGS and item not in kept:
            return [
                *kept,
                _truncated(item.kind, f"more than {MAX_EVIDENCE_FINDINGS} findings; the rest not read"),
            ]
        kept[item] = None
    return list(kept)


def _truncated(kind: str, what: str) -> Evidence:
    return Evidence(kind, "truncated", f"evidence truncated: {what}", "unknown", "none")


def _over(kind: str, what: str) -> Evidence:
    return _truncated(kind, f"{what} is over {MAX_EVIDENCE_TEXT_BYTES:,} bytes; the rest not read")


def _head(data: bytes | memoryview) -> tuple[bytes, bool]:
    """The first `MAX_EVIDENCE_TEXT_BYTES` of `data`, and whether there was more."""
    return bytes(data[:MAX_EVIDENCE_TEXT_BYTES]), len(data) > MAX_EVIDENCE_TEXT_BYTES


def _exif_bytes(fmt: str | None, info: dict[str, Any], raw: bytes, png: _PngMetadata) -> bytes:
    """The file's EXIF as a TIFF structure: a TIFF file itself, a PNG's eXIf chunk or
    ImageMagick's hex text, or what Pillow found in the header (JPEG, WebP, AVIF...)."""
    if fmt == "TIFF":
        return raw
    exif = info.get("exif") or b""
    if fmt == "PNG":
        exif = png.exif
        if not exif and _PNG_EXIF_KEY in png.texts:
            exif = bytes.fromhex("".join(png.texts[_PNG_EXIF_KEY].split("\n")[3:]))
    return exif[6:] if exif.startswith(b"Exif\0\0") else exif


def _exif_evidence(exif: bytes) -> list[Evidence]:
    if not exif:
        return []
    ifds = _tiff_fields(exif)
    found = [
        Evidence("exif", key, clip(_text(ifds[ifd][tag])), points_to, strength)
        for (ifd, tag), (key, points_to, strength) in _CAMERA_TAGS.items()
        if _text(ifds[ifd].get(tag))
    ]
    if _text(ifds[0].get(_SOFTWARE_TAG)):
        found.append(software_evidence("exif", "Software", _text(ifds[0][_SOFTWARE_TAG])))
    for ifd, tag, key in (
        (_EXIF_IFD, _USER_COMMENT_TAG, "UserComment"),
        (0, _DESCRIPTION_TAG, "ImageDescription"),
    ):
        text = _text(ifds[ifd].get(tag))
        if _SD_STEPS.search(text) and "Sampler: " in text:
            found.append(Evidence("exif", f"{key} (generator parameters)", clip(text), "ai", "strong"))
    return found


def _tiff_fields(tiff: bytes) -> dict[int, dict[int, bytes]]:
    """The raw values of `_EXIF_FIELDS` in a TIFF structure, by IFD (0 and the Exif IFD).

    Just enough of TIFF to read a few fields: no chain of IFDs followed, no value converted,
    each cut to `MAX_EVIDENCE_TEXT_BYTES`, so no hostile count, offset or loop costs more than
    that. Pillow's reader converts every field of the Exif IFD on access: 64 MiB of RATIONALs
    there took 25 s and 1.3 GB. A value that runs past the end is skipped, as Pillow does.
    """
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        raise ValueError(f"not a TIFF structure (starts {tiff[:4]!r})")
    big = struct.unpack_from(order + "H", tiff, 2)[0] == 43
    offset = struct.Struct(order + ("Q" if big else "I"))
    entry = struct.Struct(order + ("HHQ8s" if big else "HHI4s"))
    count = struct.Struct(order + ("Q" if big else "H"))

    def fields(at: int, wanted: dict[int, dict[int, int]]) -> dict[int, bytes]:
        if at + count.size + offset.size > len(tiff):
            raise ValueError(f"an IFD at offset {at:,}, past the end of {len(tiff):,} bytes")
        (claimed,) = count.unpack_from(tiff, at)
        start = at + count.size
        found: dict[int, bytes] = {}
        for index in range(min(claimed, _MAX_IFD_ENTRIES, (len(tiff) - start) // entry.size)):
            tag, kind, number, value = entry.unpack_from(tiff, start + index * entry.size)
            unit = wanted.get(tag, {}).get(kind)
            if unit is None or tag in found:
                continue
            size = number * unit
            if size <= len(value):  # held in the entry itself
                found[tag] = value[:size]
                continue
            (where,) = offset.unpack(value)
            if where + size <= len(tiff):
                found[tag] = tiff[where : where + min(size, MAX_EVIDENCE_TEXT_BYTES)]
        return found

    ifd0 = fields(offset.unpack_from(tiff, 8 if big else 4)[0], _EXIF_FIELDS[0])
    pointer = ifd0.pop(_EXIF_IFD, b"")
    if len(pointer) not in (4, 8):
        return {0: ifd0, _EXIF_IFD: {}}
    (at,) = struct.unpack(order + ("I" if len(pointer) == 4 else "Q"), pointer)
    return {0: ifd0, _EXIF_IFD: fields(at, _EXIF_FIELDS[_EXIF_IFD])}


def _text(value: object) -> str:
    """An EXIF value as text: strings as they are, UserComment's 8-byte charset prefix decoded."""
    if isinstance(value, str):
        return value.strip("\x00 ")
    if isinstance(value, bytes):
        prefix, body = value[:8], value[8:]
        if prefix == b"UNICODE\x00":
            encoding = "utf-16-le" if body[1:2] == b"\x00" and body[:1] != b"\x00" else "utf-16-be"
            return body.decode(encoding, errors="replace").strip("\x00 ")
        return (
            (body if prefix in (b"ASCII\x00\x00\x00", b"\x00" * 8) else value)
            .decode("utf-8", errors="replace")
            .strip("\x00 ")
        )
    return ""


@dataclass
class _PngMetadata:
    """What a PNG's chunks hold for evidence, before or after the pixels: the first chunk of each
    text key read (`_PNG_TEXT_KEYS`) and the first eXIf chunk."""

    texts: dict[str, str] = field(default_factory=dict)
    exif: bytes = b""


def _read_png(raw: bytes, into: _PngMetadata) -> Iterator[Evidence]:
    """Fill `into` from a PNG's chunks without decoding its pixels, and yield a finding for each
    text cut short: a text is read up to `MAX_EVIDENCE_TEXT_BYTES` (a zTXt bomb is never
    inflated whole). Ends at IEND, at a chunk that runs past the end, or after `MAX_PNG_CHUNKS`
    chunks (`open_image` refuses files with more); a damaged text chunk is skipped, as Pillow
    does."""
    for kind, start, end in islice(png_chunks(raw), MAX_PNG_CHUNKS):
        if kind == b"eXIf" and not into.exif:
            into.exif = raw[start:end]
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            key_end = raw.find(b"\0", start, min(start + 80, end))  # keys are 1-79 bytes
            key = raw[start:key_end].decode("latin-1") if key_end > start else ""
            if key in _PNG_TEXT_KEYS and key not in into.texts:
                text = _png_text(raw, kind, key_end + 1, end)
                if text is not None:
                    into.texts[key] = text[0]
                    if text[1]:
                        yield _over("png_text", f"the {key!r} text")


def _png_text(raw: bytes, kind: bytes, start: int, end: int) -> tuple[str, bool] | None:
    """The value of the text chunk whose bytes after its key are `raw[start:end]`, and whether
    it was cut; None when damaged or compressed by an unknown method. Nothing is copied past
    `MAX_EVIDENCE_TEXT_BYTES`."""
    view = memoryview(raw)
    encoding = "latin-1"
    if kind == b"tEXt":
        read = _head(view[start:end])
    elif kind == b"zTXt":
        read = _inflate(view[start + 1 : end]) if raw[start : start + 1] == b"\0" else None
    else:  # iTXt: compression flag and method, language tag, translated key, then the text
        flag, method, encoding = raw[start : start + 1], raw[start + 1 : start + 2], "utf-8"
        language_end = raw.find(b"\0", start + 2, end)
        text_start = raw.find(b"\0", language_end + 1, end) + 1 if language_end >= 0 else 0
        text = view[text_start:end]
        if not text_start or flag not in (b"\0", b"\1"):
            return None
        read = _head(text) if flag == b"\0" else _inflate(text) if method == b"\0" else None
    return None if read is None else (read[0].decode(encoding, errors="replace"), read[1])


def _inflate(data: memoryview) -> tuple[bytes, bool] | None:
    """At most `MAX_EVIDENCE_TEXT_BYTES` of a zlib stream, and whether there was more; None
    when the stream is damaged."""
    inflater = zlib.decompressobj()
    try:
        value = inflater.decompress(data, MAX_EVIDENCE_TEXT_BYTES)
    except zlib.error:
        return None
    return value, bool(inflater.unconsumed_tail)


def _text_evidence(chunks: dict[str, str]) -> list[Evidence]:
    found = [
        Evidence("png_text", key, _summarise(key, chunks[key]), "ai", "strong")
        for key in GENERATOR_TEXT_KEYS
        if key in chunks and _looks_generated(key, chunks[key])
    ]
    found += [software_evidence("png_text", key, chunks[key]) for key in _SOFTWARE_TEXT_KEYS if key in chunks]
    return found


def _looks_generated(key: str, text: str) -> bool:
    """A generator key with content of that generator's shape (JSON for ComfyUI/InvokeAI)."""
    if key in ("prompt", "workflow", "invokeai_metadata", "invokeai_graph", "sd-metadata"):
        return isinstance(_json(text), (dict, list))
    return bool(text.strip())


def _summarise(key: str, text: str) -> str:
    """A short readable value: for ComfyUI graphs, the model files they load."""
    if key in ("prompt", "workflow"):
        models = sorted(set(_model_names(_json(text))))
        if models:
            return clip(f"{GENERATOR_TEXT_KEYS[key]}; models: {', '.join(models)}")
        return clip(f"{GENERATOR_TEXT_KEYS[key]} ({len(text):,} characters of JSON)")
    return clip(text)


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _model_names(node: object, depth: int = 0) -> Iterable[str]:
    """Values of `*_name` inputs naming model files (ckpt_name, unet_name, lora_name...)."""
    if depth > 20:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and str(key).endswith(("ckpt_name", "unet_name", "lora_name")):
                yield value
            else:
                yield from _model_names(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            yield from _model_names(value, depth + 1)


def _xmp_evidence(packet: bytes | str) -> Iterator[Evidence]:
    """Digital source types and creator tools in the first `MAX_EVIDENCE_TEXT_BYTES` of an XMP
    packet, found one at a time (so that `_capped` stops the search). Matched as text, never
    parsed as XML: entities are not expanded, and nesting costs nothing."""
    if isinstance(packet, str):
        packet = packet.encode("utf-8", errors="replace")
    head, more = _head(packet)
    text = head.decode("utf-8", errors="replace")
    for match in _XMP_SOURCE_TYPE.finditer(text):
        yield source_type_evidence("xmp", "DigitalSourceType", next(g for g in match.groups() if g))
    for match in _XMP_CREATOR_TOOL.finditer(text):
        yield software_evidence("xmp", "CreatorTool", next(g for g in match.groups() if g))
    if more:
        yield _over("xmp", "the XMP packet")
