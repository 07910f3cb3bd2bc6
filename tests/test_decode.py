"""Safe decoding: every mode becomes RGB, every bad input an ImageDecodeError naming the file."""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np
import pytest
from conftest import bomb_png, encode, random_image
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fakelens.data.decode import decode_image, load_image, read_file_bytes, resize_to
from fakelens.errors import ImageDecodeError


def save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_rgb_png_round_trips_exactly():
    array = random_image(1, (7, 5))
    assert np.array_equal(decode_image(encode(array, "PNG")), array)


def grey16(array: np.ndarray) -> Image.Image:
    image = Image.fromarray(array.astype(np.uint16))
    assert image.mode.startswith("I;16")
    return image


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "CMYK", "P", "1", "I;16", "I", "F"])
def test_every_mode_becomes_rgb_uint8(mode):
    if mode in ("I;16", "I", "F"):
        image = grey16(np.arange(54).reshape(6, 9) * 1000)
        image = image if mode == "I;16" else image.convert(mode)
    else:
        image = Image.fromarray(random_image(2, (6, 9))).convert(mode)
    fmt = {"CMYK": "JPEG", "F": "TIFF", "I": "TIFF"}.get(mode, "PNG")
    out = decode_image(save(image, fmt))
    assert out.shape == (6, 9, 3) and out.dtype == np.uint8


def test_sixteen_bit_grey_is_scaled_not_clipped():
    out = decode_image(save(grey16(np.array([[0, 32896, 65535]])), "PNG"))
    assert out[0, :, 0].tolist() == [0, 128, 255]


def test_transparency_is_composited_on_white():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)  # fully transparent black
    assert (decode_image(encode(rgba, "PNG")) == 255).all()
    palette = Image.new("P", (2, 2), 0)
    palette.putpalette([0, 0, 0] * 256)
    out = decode_image(save(palette, "PNG", transparency=0))
    assert (out == 255).all()


def test_exif_orientation_is_applied():
    array = np.zeros((4, 8, 3), dtype=np.uint8)  # wide
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    out = decode_image(save(Image.fromarray(array), "JPEG", exif=exif))
    assert out.shape[:2] == (8, 4)


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (4, 4), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = save(frames[0], "GIF", save_all=True, append_images=frames[1:])
    out = decode_image(data)
    assert out[0, 0, 0] > 200 and out[0, 0, 2] < 50


def bad_inputs(tmp_path):
    jpeg = encode(random_image(3, (64, 64)), "JPEG")
    png = encode(random_image(3, (64, 64)), "PNG")
    cases = {
        "empty.jpg": (b"", "empty"),
        "random.jpg": (os.urandom(2048), "not a recognised image"),
        "text.jpg": (b"<html><body>not an image</body></html>", "not a recognised image"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "corrupt or truncated"),
        "truncated.png": (png[: len(png) // 2], "corrupt or truncated"),
        "header-only.png": (png[:40], "corrupt or truncated"),
    }
    for name, (data, _) in cases.items():
        (tmp_path / name).write_bytes(data)
    return {tmp_path / name: reason for name, (_, reason) in cases.items()}


def test_bad_files_raise_image_decode_error_naming_the_file(tmp_path):
    for path, reason in bad_inputs(tmp_path).items():
        with pytest.raises(ImageDecodeError, match=reason) as caught:
            decode_image(path)
        assert str(path) in str(caught.value)


def test_missing_file_directory_and_name_in_bytes_errors(tmp_path):
    with pytest.raises(ImageDecodeError, match="not found"):
        decode_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageDecodeError, match="is a directory"):
        decode_image(tmp_path)
    with pytest.raises(ImageDecodeError, match="upload.png: file is empty"):
        decode_image(b"", name="upload.png")


def test_pixel_limit_is_checked_before_decoding():
    data = encode(random_image(4, (100, 100)), "PNG")
    with pytest.raises(ImageDecodeError, match="10,000 pixels, over the 5,000-pixel limit"):
        decode_image(data, max_pixels=5_000)


def test_decompression_bomb_header_is_refused_fast():
    with pytest.raises(ImageDecodeError, match="pixel limit|decompression bomb"):
        decode_image(bomb_png(), name="bomb.png")


def test_resize_and_load_image_give_model_size():
    big = random_image(5, (300, 200))
    assert resize_to(big, (32, 32)).shape == (32, 32, 3)
    assert load_image(encode(big), (32, 32)).shape == (32, 32, 3)
    small = random_image(6)
    assert resize_to(small, (32, 32)) is small


@settings(max_examples=200, deadline=2000)
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise_anything_else(data):
    with contextlib.suppress(ImageDecodeError):
        decode_image(data, name="fuzz")


@settings(max_examples=150, deadline=2000)
@given(st.integers(0, 10_000), st.integers(0, 255), st.sampled_from(["JPEG", "PNG", "GIF", "BMP", "WEBP"]))
def test_mutated_valid_images_never_raise_anything_else(position, value, fmt):
    data = bytearray(encode(random_image(7, (16, 16)), fmt))
    data[position % len(data)] = value
    try:
        out = decode_image(bytes(data), name="mutant")
    except ImageDecodeError:
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


@pytest.mark.parametrize("size", [(32, 32), (48, 300), (224, 224), (700, 101)])
@pytest.mark.parametrize("subsampling", [0, 2])
def test_the_jpeg_fast_path_gives_exactly_what_pillow_gives(size, subsampling):
    array = (random_image(5, size) // 3 + np.linspace(0, 160, size[1], dtype=np.uint8)[None, :, None]).astype(
        np.uint8
    )
    for raw in (encode(array, quality=90, subsampling=subsampling), encode(array[..., 0], quality=90)):
        for draft in (None, (64, 64)):
            with Image.open(io.BytesIO(raw)) as image:
                if draft is not None:
                    image.draft("RGB", draft)
                expected = np.asarray(image.convert("RGB"))
            assert np.array_equal(decode_image(raw, draft_size=draft), expected)


def test_a_12_megapixel_jpeg_decodes_at_reduced_size():
    gradient = np.linspace(0, 255, 4000, dtype=np.uint8)
    raw = encode(np.broadcast_to(gradient[None, :, None], (3000, 4000, 3)).copy(), quality=85)
    assert decode_image(raw, draft_size=(64, 64)).shape == (375, 500, 3)  # 1/8 scale, >= 2x the input
    assert load_image(raw, (32, 32)).shape == (32, 32, 3)
    assert decode_image(raw).shape == (3000, 4000, 3)


@pytest.mark.parametrize("size", [0, 1, 65_535, 65_536, 200_001])
def test_read_file_bytes_returns_every_byte(tmp_path, size):
    data = os.urandom(size)
    (tmp_path / "f.jpg").write_bytes(data)
    assert read_file_bytes(tmp_path / "f.jpg") == data


def test_read_file_bytes_refuses_folders_fifos_and_files_over_the_limit(tmp_path):
    (tmp_path / "big.jpg").write_bytes(bytes(101))
    with pytest.raises(ImageDecodeError, match="101 bytes, over the 100-byte limit"):
        read_file_bytes(tmp_path / "big.jpg", max_bytes=100)
    with pytest.raises(ImageDecodeError, match="is a directory"):
        read_file_bytes(tmp_path)
    os.mkfifo(tmp_path / "pipe.jpg")  # nobody writes to it: opening must not wait for a writer
    with pytest.raises(ImageDecodeError, match="not a regular file"):
        read_file_bytes(tmp_path / "pipe.jpg")


def test_read_file_bytes_reads_past_a_stale_size_up_to_the_limit(tmp_path, monkeypatch):
    """A file that grew after its size was taken is read to its end, or refused past the limit."""
    (tmp_path / "f.jpg").write_bytes(bytes(range(100)) * 1000)
    real_fstat = os.fstat
    stale = lambda fd: os.stat_result((*real_fstat(fd)[:6], 10, *real_fstat(fd)[7:]))  # noqa: E731
    monkeypatch.setattr(os, "fstat", stale)
    assert read_file_bytes(tmp_path / "f.jpg") == bytes(range(100)) * 1000
    with pytest.raises(ImageDecodeError, match="grew past the 50,000-byte limit"):
        read_file_bytes(tmp_path / "f.jpg", max_bytes=50_000)
