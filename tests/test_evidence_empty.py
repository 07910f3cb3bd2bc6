"""Metadata fields that are present but empty say nothing: they give no evidence item."""

from __future__ import annotations

from conftest import encode, random_image
from PIL import Image

from fakelens.evidence.metadata import read_evidence

SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"


def xmp_packet(creator_tool: str) -> bytes:
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
        f' xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="{creator_tool}"'
        f' Iptc4xmpExt:DigitalSourceType="{SOURCE_TYPE}"/></rdf:RDF></x:xmpmeta>'
    ).encode()


def test_blank_fields_give_no_evidence_and_filled_ones_still_do():
    exif = Image.Exif()
    exif[271], exif[305] = "Canon", " "  # Make, and a blank Software
    blank = read_evidence(encode(random_image(0), "JPEG", exif=exif, xmp=xmp_packet("   ")))
    assert all(item.value for item in blank)
    keys = {(item.kind, item.key) for item in blank}
    assert ("xmp", "DigitalSourceType") in keys and ("xmp", "CreatorTool") not in keys
    assert not any(item.kind == "exif" and item.value == "" for item in blank)

    filled = read_evidence(encode(random_image(0), "JPEG", exif=exif, xmp=xmp_packet("Midjourney")))
    assert ("xmp", "CreatorTool") in {(item.kind, item.key) for item in filled}
