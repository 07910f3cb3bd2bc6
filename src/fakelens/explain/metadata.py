"""Read the evidence an image file carries about itself: EXIF, PNG text chunks, XMP, C2PA.

Nothing here is trusted blindly: every finding says which way it points and how strongly, and
all of it is easy to strip or forge (see docs/explain.md). Reading is bounded (the file size
limit of `read_file_bytes`, Pillow's text-chunk limits, the pixel limit before any pixel is
decoded) and raises nothing but `ImageDecodeError`, for files that are not readable images.

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
import warnings
from collections.abc import Iterable

from PIL import Image

from fakelens.data.decode import PIL_ERRORS, ImageInput, input_bytes, open_image
from fakelens.errors import ImageDecodeError
from fakelens.explain.evidence import (
    Evidence,
    clip,
    software_evidence,
    source_type_evidence,
)
from fakelens.explain.provenance import c2pa_evidence

__all__ = ["Evidence", "evidence_dicts", "read_evidence"]

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
#: What a generator's parameter text looks like (A1111's "Steps: 20, Sampler: Euler a, ...").
_SD_STEPS = re.compile(r"\bSteps: \d+")
_XMP_SOURCE_TYPE = re.compile(
    r"""DigitalSourceType(?:\s*=\s*["']([^"']{1,500})["']"""
    r"""|[^>]{0,200}?rdf:resource\s*=\s*["']([^"']{1,500})["']"""
    r"""|\s*>\s*([^<\s][^<]{0,499}))"""
)
_XMP_CREATOR_TOOL = re.compile(r"""CreatorTool(?:\s*=\s*["']([^"']{1,500})["']|\s*>\s*([^<]{1,500})<)""")


def read_evidence(data: ImageInput, *, name: str | None = None) -> list[Evidence]:
    """Every finding in the file's metadata, in the order EXIF, PNG text, XMP, C2PA.

    `data` is a path or the file's bytes. Raises `ImageDecodeError` only, for files that are
    unreadable or not images; damaged metadata inside a readable image is skipped.
    """
    label, raw = input_bytes(data, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pillow's "Corrupt EXIF data": skipped, as documented
        with open_image(raw, label) as image:
            fmt = image.format
            found = [*_exif_evidence(image), *_text_evidence(image), *_xmp_evidence(_xmp_packet(image))]
    return found + c2pa_evidence(raw, Image.MIME.get(fmt or ""))


def evidence_dicts(data: ImageInput, *, name: str | None = None) -> list[dict[str, str]]:
    """`read_evidence` as plain dicts for result records; [] for a file that is not a readable
    image (its record already says why)."""
    try:
        return [item.to_dict() for item in read_evidence(data, name=name)]
    except ImageDecodeError:
        return []


def _exif_evidence(image: Image.Image) -> list[Evidence]:
    try:
        exif = image.getexif()
        ifds = {0: dict(exif), _EXIF_IFD: dict(exif.get_ifd(_EXIF_IFD))}
    except PIL_ERRORS:
        return []
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


def _text_chunks(image: Image.Image) -> dict[str, str]:
    """PNG tEXt/iTXt/zTXt chunks, including those after the pixels when the image is readable."""
    if image.format != "PNG":
        return {}
    try:
        chunks = image.text  # decodes the (size-checked) pixels to reach chunks after IDAT
    except PIL_ERRORS:
        chunks = image.info  # truncated or damaged pixels: the chunks before them
    return {str(k): v for k, v in chunks.items() if isinstance(v, str)}


def _text_evidence(image: Image.Image) -> list[Evidence]:
    chunks = _text_chunks(image)
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


def _xmp_packet(image: Image.Image) -> str:
    """The XMP packet as text (JPEG APP1, PNG iTXt, WebP, TIFF), or ''."""
    packet = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp") or ""
    return packet.decode("utf-8", errors="replace") if isinstance(packet, bytes) else str(packet)


def _xmp_evidence(packet: str) -> list[Evidence]:
    found = [
        source_type_evidence("xmp", "DigitalSourceType", next(g for g in match.groups() if g))
        for match in _XMP_SOURCE_TYPE.finditer(packet)
    ]
    found += [
        software_evidence("xmp", "CreatorTool", next(g for g in match.groups() if g))
        for match in _XMP_CREATOR_TOOL.finditer(packet)
    ]
    return found
