"""Property-based fuzzing of the decoder and the metadata reader with random and mutated files.

The only exception allowed out is `ImageDecodeError`; each input must finish within the
hypothesis deadline; headers claiming huge sizes must be refused before pixels are allocated.
Examples are derandomized, so CI runs the same inputs every time.
"""

from __future__ import annotations

import io
import resource
import time

import numpy as np
import pytest
from conftest import random_image
from hostile import bombs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from fakelens.data.decode import decode_image
from fakelens.errors import ImageDecodeError
from fakelens.evidence.metadata import read_evidence

FUZZ = settings(
    max_examples=300,
    deadline=1000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def seeds() -> dict[str, bytes]:
    """Small valid files with metadata to damage: EXIF, PNG text chunks, XMP."""
    image = Image.fromarray(random_image(9, (12, 10)))
    exif = Image.Exif()
    exif[0x0131] = "Stable Diffusion"  # Software
    exif[0x0112] = 6
    text = PngImagePlugin.PngInfo()
    text.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, Seed: 1")
    xmp = b'<x:xmpmeta><rdf:Description DigitalSourceType="trainedAlgorithmicMedia"/></x:xmpmeta>'
    options = {
        "JPEG": {"exif": exif, "xmp": xmp},
        "PNG": {"pnginfo": text},
        "WEBP": {"exif": exif, "xmp": xmp},
        "GIF": {},
    }
    out = {}
    for fmt, extra in options.items():
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **extra)
        out[fmt] = buffer.getvalue()
    return out


SEEDS = seeds()


@st.composite
def mutants(draw, seeds: dict[str, bytes] = SEEDS) -> bytes:
    """A valid seed file with up to four bytes flipped, inserted or deleted."""
    data = bytearray(seeds[draw(st.sampled_from(sorted(seeds)))])
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip":
            data[position] ^= draw(st.integers(1, 255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif len(data) > 1:
            del data[position : position + draw(st.integers(1, 16))]
    return bytes(data)


def survives(read, data: bytes) -> None:
    """`read(data)` returns, or raises ImageDecodeError naming the input; nothing else."""
    try:
        read(data)
    except ImageDecodeError as caught:
        assert caught.source == "fuzz" and caught.reason


def decode(data: bytes) -> None:
    out = decode_image(data, name="fuzz")
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


def evidence(data: bytes) -> None:
    assert all(isinstance(item.to_dict()["value"], str) for item in read_evidence(data, name="fuzz"))


@FUZZ
@given(st.binary(max_size=2048))
def test_read_evidence_on_random_bytes(data):
    survives(evidence, data)


@FUZZ
@given(mutants())
def test_read_evidence_on_mutated_images(data):
    survives(evidence, data)


@FUZZ
@given(mutants())
def test_decode_image_on_mutated_images(data):
    survives(decode, data)


def test_the_seeds_are_valid_and_carry_metadata():
    for fmt, data in SEEDS.items():
        decode(data)
        if fmt != "GIF":
            assert read_evidence(data), fmt  # so mutations really exercise the metadata parsers


def test_bombs_are_refused_fast_without_allocating_their_pixels():
    """Each header claims 0.27 to 40 gigapixels; refused in milliseconds, with peak memory
    (ru_maxrss, kilobytes on Linux) growing by far less than one such image would need."""
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for case in bombs():
        for read in (decode, evidence):
            began = time.perf_counter()
            survives(read, case.data)
            assert time.perf_counter() - began < 0.5, case.name
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mb < 64, f"peak memory grew by {grown_mb:.0f} MB"


C2PA = {}
try:  # a JPEG with a signed C2PA manifest, when the `c2pa` extra is installed
    import c2pa
    from test_metadata import signed_jpeg

    C2PA["C2PA JPEG"] = signed_jpeg(c2pa)
except ImportError:
    pass


@pytest.mark.skipif(not C2PA, reason="the `c2pa` extra (c2pa-python) is not installed")
@settings(FUZZ, max_examples=100)
@given(mutants(C2PA))
def test_read_evidence_on_mutated_c2pa_manifests(data):
    survives(evidence, data)
