"""Hostile metadata, made in code: readable images whose EXIF, PNG text, XMP or C2PA is built to
crash or exhaust an evidence reader (issue 19, classes 1 and 12).

Every case is a small image around its metadata. Its evidence must come back quickly and short,
or the file be refused by name; its pixels are scored unless the decoder refuses the whole file
(Pillow does, for text chunks over its own limits). Nothing is committed as binary.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from functools import cache

import numpy as np
from conftest import encode, random_image

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
MIB = 1024 * 1024
#: The C2PA JUMBF description box's UUID ("c2pa" then the ISO suffix).
C2PA_UUID = bytes.fromhex("6332706100110010800000AA00389B71")


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes


def chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with a correct CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def deflated_zeros(size: int) -> bytes:
    """A zlib stream that inflates to `size` zero bytes (a whole number of MiB), made in
    milliseconds: one fully flushed deflate block of 1 MiB of zeros repeated, then an empty
    final block and the Adler-32 of `size` zeros (a = 1, b = size mod 65521)."""
    packer = zlib.compressobj(9)
    head = packer.compress(bytes(MIB)) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(bytes(MIB)) + packer.flush(zlib.Z_FULL_FLUSH)  # the same, headless
    return head[:2] + block * (size // MIB) + b"\x03\x00" + struct.pack(">HH", size % 65521, 1)


def png(before: bytes = b"", after: bytes = b"") -> bytes:
    """A 16 x 16 PNG with raw chunks inserted before its pixel data and after it."""
    data = encode(random_image(1, (16, 16)), "PNG")
    idat, iend = data.index(b"IDAT") - 4, data.index(b"IEND") - 4
    return data[:idat] + before + data[idat:iend] + after + data[iend:]


def ztxt(key: str, inflated: bytes | None = None, *, zeros: int = 0) -> bytes:
    body = deflated_zeros(zeros) if inflated is None else zlib.compress(inflated)
    return chunk(b"zTXt", key.encode("latin-1") + b"\0\0" + body)


def itxt(key: str, text: bytes) -> bytes:
    return chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + text)


def text(key: str, value: bytes) -> bytes:
    return chunk(b"tEXt", key.encode("latin-1") + b"\0" + value)


@cache
def png_text_cases() -> tuple[Case, ...]:
    """Text chunks that are huge, bombs, damaged, numerous or nested, before and after the pixels."""
    parameters = b"a cat\nSteps: 20, Sampler: Euler a, Seed: 1"
    return (
        Case("ztxt-2mib-after-idat.png", png(after=ztxt("Comment", b"x" * (2 * MIB)))),
        Case("ztxt-2mib-before-idat.png", png(before=ztxt("Comment", b"x" * (2 * MIB)))),
        Case("ztxt-bomb-512mib-after-idat.png", png(after=ztxt("parameters", zeros=512 * MIB))),
        Case("itxt-bomb-512mib-xmp-after-idat.png", png(after=itxt_bomb("XML:com.adobe.xmp", 512 * MIB))),
        Case("itxt-bomb-512mib-before-idat.png", png(before=itxt_bomb("parameters", 512 * MIB))),
        Case("text-32mib-parameters-after-idat.png", png(after=text("parameters", b"p" * (32 * MIB)))),
        Case("text-32mib-parameters-before-idat.png", png(before=text("parameters", b"p" * (32 * MIB)))),
        Case("itxt-32mib-xmp-after-idat.png", png(after=itxt("XML:com.adobe.xmp", b"<x>" * (11 * MIB)))),
        Case("text-80x1mib-after-idat.png", png(after=text("Software", b"s" * MIB) * 80)),
        Case("text-100k-chunks-after-idat.png", png(after=text("Software", b"NovelAI") * 100_000)),
        Case("empty-chunks-1m-after-idat.png", png(after=chunk(b"teXt", b"") * 1_000_000)),
        Case("ztxt-unknown-method-after-idat.png", png(after=chunk(b"zTXt", b"parameters\0\x07abc"))),
        Case("ztxt-bad-stream-after-idat.png", png(after=chunk(b"zTXt", b"parameters\0\0not zlib"))),
        Case("text-bad-crc-after-idat.png", png(after=text("parameters", parameters)[:-4] + b"\0\0\0\0")),
        Case("text-length-past-end.png", png(after=struct.pack(">I", 2**31 - 1) + b"tEXtparameters\0")),
        Case("itxt-not-utf8-after-idat.png", png(after=itxt("parameters", b"\xff\xfe" + parameters))),
        Case("itxt-missing-fields.png", png(after=chunk(b"iTXt", b"parameters\0\x01"))),
        Case("text-key-not-latin1.png", png(after=chunk(b"tEXt", b"\xff" * 80 + b"\0" + parameters))),
        Case("prompt-nested-200k-deep.png", png(after=text("prompt", b"[" * 200_000 + b"]" * 200_000))),
        Case(
            "workflow-4mib-json.png",
            png(
                after=text(
                    "workflow", b'{"nodes": [' + b'{"ckpt_name": "m.safetensors"},' * 130_000 + b"{}]}"
                )
            ),
        ),
    )


def itxt_bomb(key: str, size: int) -> bytes:
    return chunk(b"iTXt", key.encode("latin-1") + b"\0\x01\0\0\0" + deflated_zeros(size))


def long(value: int) -> bytes:
    return struct.pack("<I", value)


Entry = tuple[int, int, int, bytes]  # (tag, TIFF type, count, value bytes)
EXIF_IFD = 0x8769


def ifd(entries: list[Entry], start: int, *, next_ifd: int = 0, order: str = "<") -> bytes:
    """An IFD at offset `start` in byte `order`, values over 4 bytes laid out right after it."""
    end = start + 2 + 12 * len(entries) + 4
    table, values = b"", b""
    for tag, kind, count, value in entries:
        if len(value) > 4:
            table += struct.pack(order + "HHII", tag, kind, count, end + len(values))
            values += value + b"\0" * (len(value) % 2)
        else:
            table += struct.pack(order + "HHI", tag, kind, count) + value.ljust(4, b"\0")
    return struct.pack(order + "H", len(entries)) + table + struct.pack(order + "I", next_ifd) + values


def exif_block(entries: list[Entry], *, next_ifd: int = 0, order: str = "<") -> bytes:
    """A TIFF header and one IFD, as EXIF carries them, little- or big-endian."""
    head = b"II*\0" if order == "<" else b"MM\0*"
    return head + struct.pack(order + "I", 8) + ifd(entries, 8, next_ifd=next_ifd, order=order)


def jpeg_with_exif(exif: bytes) -> bytes:
    """A small JPEG carrying `exif` as its APP1 segment, whatever it holds."""
    data = encode(random_image(2, (16, 16)))
    segment = b"Exif\0\0" + exif
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + data[2:]


def grey_tiff(tags: list[Entry] = (), exif: list[Entry] = ()) -> bytes:
    """A valid 16 x 16 grey TIFF with extra IFD0 `tags` and, when given, an Exif IFD of `exif`."""

    def ifd0(pixels_at: int, exif_at: int) -> bytes:
        own = [(256, 3, 1, b"\x10"), (257, 3, 1, b"\x10"), (258, 3, 1, b"\x08"), (259, 3, 1, b"\x01")]
        own += [(262, 3, 1, b"\x01"), (273, 4, 1, long(pixels_at)), (278, 3, 1, b"\x10")]
        own += [(279, 4, 1, long(256))] + ([(EXIF_IFD, 4, 1, long(exif_at))] if exif else [])
        return ifd(sorted([*own, *tags]), 8)

    pixels_at = 8 + len(ifd0(0, 0))
    exif_at = pixels_at + 256
    return b"II*\0" + long(8) + ifd0(pixels_at, exif_at) + bytes(range(256)) + ifd(list(exif), exif_at)


@cache
def exif_cases() -> tuple[Case, ...]:
    """EXIF whose IFDs loop, claim absurd counts or offsets, or hold megabytes of values."""
    camera = (271, 2, 4, b"Cam\0")
    return (
        Case("exif-ifd0-loops-to-itself.jpg", jpeg_with_exif(exif_block([camera], next_ifd=8))),
        Case("exif-pointer-to-ifd0.jpg", jpeg_with_exif(exif_block([camera, (EXIF_IFD, 4, 1, long(8))]))),
        Case("exif-pointer-past-end.jpg", jpeg_with_exif(exif_block([(EXIF_IFD, 4, 1, long(2**31))]))),
        Case("exif-pointer-is-text.jpg", jpeg_with_exif(exif_block([(EXIF_IFD, 2, 4, b"abc\0")]))),
        Case("exif-count-4g.jpg", jpeg_with_exif(exif_block([(271, 2, 2**32 - 1, long(8))]))),
        Case("exif-65535-entries-claimed.jpg", jpeg_with_exif(b"II*\0" + long(8) + b"\xff\xff" + bytes(64))),
        Case("exif-ifd-offset-past-end.jpg", jpeg_with_exif(b"II*\0" + long(2**31))),
        Case("exif-bad-byte-order.jpg", jpeg_with_exif(b"XX*\0" + long(8) + bytes(32))),
        Case("exif-5000-entries.jpg", jpeg_with_exif(exif_block([(305, 2, 4, b"abc\0")] * 5000))),
        Case("exif-png-chunk-garbage.png", png(before=chunk(b"eXIf", b"MM\0*" + bytes(4) + b"\xff" * 64))),
        Case("exif-png-chunk-after-idat.png", png(after=chunk(b"eXIf", exif_block([camera], next_ifd=8)))),
        Case(
            "exif-48mib-description.tif",
            grey_tiff([(270, 2, 48 * MIB, b"Steps: 20, Sampler: Euler a ".ljust(48 * MIB, b"d"))]),
        ),
        Case(
            "exif-16mib-user-comment.tif",
            grey_tiff(exif=[(37510, 7, 16 * MIB, b"ASCII\0\0\0".ljust(16 * MIB, b"u"))]),
        ),
        Case("exif-tiff-count-4g.tif", grey_tiff([(271, 2, 2**32 - 1, long(8))])),
        Case("exif-tiff-offset-past-end.tif", grey_tiff([(305, 2, 100, long(2**31))])),
        Case("exif-rational-bomb-64mib.tif", grey_tiff(exif=[(37386, 5, 8 * MIB, bytes(64 * MIB))])),
        Case("exif-long-bomb-64mib.tif", grey_tiff(exif=[(42035, 4, 16 * MIB, bytes(64 * MIB))])),
    )


def xmp_packet(body: str) -> bytes:
    return (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        f"{body}</x:xmpmeta><?xpacket end='w'?>"
    ).encode()


def jpeg_with_xmp(*packets: bytes) -> bytes:
    """A small JPEG with one APP1 XMP segment per packet (each at most 64 KiB)."""
    data = encode(random_image(4, (16, 16)))
    segments = b"".join(
        b"\xff\xe1" + struct.pack(">H", len(p) + 31) + b"http://ns.adobe.com/xap/1.0/\0" + p for p in packets
    )
    return data[:2] + segments + data[2:]


@cache
def xmp_cases() -> tuple[Case, ...]:
    """XMP that is no XML, expands entities, nests deeply, or holds hundreds of thousands of findings."""
    laughs = (
        '<!DOCTYPE x [<!ENTITY a "trainedAlgorithmicMedia">'
        + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
        + "]>"
    )
    findings = "".join(
        f"<Iptc4xmpExt:DigitalSourceType>{IPTC}trainedAlgorithmicMedia{i}</Iptc4xmpExt:DigitalSourceType>"
        f'<rdf:li xmp:CreatorTool="tool {i}"/>'
        for i in range(100_000)
    )
    many = xmp_packet(findings)
    return (
        Case("xmp-not-xml.jpg", jpeg_with_xmp(b"\x00\xff<<<>>>&&&" * 4000)),
        Case("xmp-billion-laughs.jpg", jpeg_with_xmp(xmp_packet(laughs + "<x:y>&j;</x:y>"))),
        Case("xmp-nested-8k-deep.jpg", jpeg_with_xmp(xmp_packet("<a>" * 8000 + "</a>" * 8000))),
        Case("xmp-nested-200k-deep.png", png(after=itxt("XML:com.adobe.xmp", xmp_packet("<a>" * 200_000)))),
        Case("xmp-not-utf8.jpg", jpeg_with_xmp(b"\xff\xfe\xfd" * 20_000)),
        Case("xmp-unclosed-attribute.jpg", jpeg_with_xmp(xmp_packet('DigitalSourceType="' + "x" * 60_000))),
        Case("xmp-many-segments.jpg", jpeg_with_xmp(*[xmp_packet(findings[:60_000])] * 300)),
        Case(
            "xmp-huge-creator-tool.png",
            png(after=itxt("XML:com.adobe.xmp", b"CreatorTool>" + b"t" * (8 * MIB))),
        ),
        Case(
            "xmp-creator-tool-spaces.png", png(after=itxt("XML:com.adobe.xmp", b"CreatorTool>" + b" " * MIB))
        ),
        Case("xmp-200k-findings.tif", grey_tiff([(700, 1, len(many), many)])),
        Case("xmp-200k-findings.png", png(before=itxt("XML:com.adobe.xmp", many))),
    )


def jumbf(label: bytes, content: bytes) -> bytes:
    """A JUMBF superbox: its description box (C2PA's UUID, `label`) and raw `content`."""
    description = b"jumd" + C2PA_UUID + b"\x03" + label + b"\0"
    body = struct.pack(">I", len(description) + 4) + description + content
    return struct.pack(">I", len(body) + 4) + b"jumb" + body


def jpeg_with_jumbf(box: bytes) -> bytes:
    """A small JPEG carrying `box` in one APP11 segment, as C2PA embeds its manifest store."""
    data = encode(random_image(5, (16, 16)))
    segment = b"JP" + struct.pack(">HI", 1, 1) + box
    return data[:2] + b"\xff\xeb" + struct.pack(">H", len(segment) + 2) + segment + data[2:]


@cache
def c2pa_cases() -> tuple[Case, ...]:
    """Manifest stores that are garbage, lie about their sizes, or nest deeply."""
    rng = np.random.default_rng(19)
    nested = b"c2pa"
    for _ in range(2000):
        nested = jumbf(b"c2pa", nested)
    return (
        Case("c2pa-garbage.jpg", jpeg_with_jumbf(jumbf(b"c2pa", rng.bytes(20_000)))),
        Case("c2pa-box-length-4g.jpg", jpeg_with_jumbf(b"\xff\xff\xff\xffjumb" + jumbf(b"c2pa", b"")[8:])),
        Case("c2pa-nested-2000-deep.jpg", jpeg_with_jumbf(nested[:65_000])),
        Case("c2pa-label-in-text.png", png(after=text("Comment", b"c2pa " * 1000))),
        Case("c2pa-png-chunk-garbage.png", png(before=chunk(b"caBX", jumbf(b"c2pa", rng.bytes(4096))))),
    )


def every_case() -> tuple[Case, ...]:
    return (*png_text_cases(), *exif_cases(), *xmp_cases(), *c2pa_cases())
