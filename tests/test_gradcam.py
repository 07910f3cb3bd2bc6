"""Grad-CAM sanity checks: shape and aspect, finite and non-negative, image- and weight-dependent
(Adebayo et al.'s model-randomisation test), the overlay, and `fakelens explain`."""

from __future__ import annotations

import io
import json

import keras
import numpy as np
import pytest
from conftest import encode, random_image
from PIL import Image
from typer.testing import CliRunner

from fakelens.cli import app
from fakelens.errors import ImageDecodeError, InvalidArgumentError
from fakelens.explain.gradcam import explain, heatmap, target_layer
from fakelens.explain.heatmaps import MAX_MAP_SIDE, overlay_png
from fakelens.inference.detector import Detector, load_detector
from fakelens.models import available_models, create_model
from fakelens.models.card import ModelCard


@pytest.fixture(scope="module")
def seed() -> Detector:
    return load_detector("seed", backend="keras")


def smooth_image(height: int = 32, width: int = 32) -> np.ndarray:
    """A smooth colour gradient: unlike noise, nothing like the fine detail of either class."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack(
        [x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), np.full_like(x, 128)], -1
    ).astype(np.uint8)


@pytest.mark.parametrize("name, expected", [("seed", keras.layers.Conv2D), ("patchres", keras.layers.ReLU)])
def test_target_is_the_last_convolutional_block(name, expected):
    layer = target_layer(load_detector(name, backend="keras").model)
    assert isinstance(layer, expected)
    assert len(layer.output.shape) == 4 and layer.output.shape[1] > 1


@pytest.mark.parametrize("name", sorted(available_models()))
def test_every_registered_model_can_be_explained(name):
    keras.utils.set_random_seed(0)
    model, card = create_model(name)
    cam = heatmap(Detector(model, card), random_image(4))
    assert cam.shape == (32, 32) and np.isfinite(cam).all() and (cam >= 0).all()


def test_a_model_without_convolutions_is_refused():
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(inputs)))
    with pytest.raises(InvalidArgumentError, match="no convolutional layer"):
        target_layer(model)


@pytest.mark.parametrize("size", [(32, 32), (40, 100), (1200, 600)])
def test_map_has_the_input_aspect_and_is_finite_and_non_negative(seed, size):
    image = random_image(sum(size), size)
    cam = heatmap(seed, image)
    height, width = size
    scale = min(1.0, MAX_MAP_SIDE / max(size))
    assert cam.shape == (round(height * scale), round(width * scale))
    assert cam.dtype == np.float32 and np.isfinite(cam).all() and (cam >= 0).all()


def test_explain_scores_exactly_as_predict_does(seed, tmp_path):
    path = tmp_path / "large.jpg"
    path.write_bytes(encode(random_image(7, (700, 1100))))
    explanation = explain(seed, path)
    assert explanation.ai_probability == seed.predict([path])[0].ai_probability
    assert explanation.image.shape[:2] == explanation.heatmap.shape == (326, 512)


def test_map_differs_between_two_images(seed):
    first, second = heatmap(seed, random_image(1)), heatmap(seed, smooth_image())
    assert first.max() > 0
    assert not np.allclose(first, second, atol=1e-3 * first.max())


def test_map_changes_when_the_weights_are_randomised(seed):
    """Model randomisation (Adebayo et al., 2018): a map that survives new random weights would be
    explaining the image, not the model."""
    image = random_image(1)
    trained = heatmap(seed, image)
    keras.utils.set_random_seed(1)
    randomised = Detector(keras.models.clone_model(seed.model), seed.card)
    other = heatmap(randomised, image)
    assert trained.max() > 0
    if other.max() > 0:
        correlation = np.corrcoef(trained.ravel(), other.ravel())[0, 1]
        assert correlation < 0.9
    assert not np.allclose(trained, other, atol=1e-3 * trained.max())


def test_the_ai_score_is_taken_in_the_model_s_own_convention(seed):
    """A card that reads the same output the other way round explains the opposite class."""
    image = random_image(3)
    flipped = Detector(seed.model, ModelCard(**{**seed.card.__dict__, "output": "p_ai"}))
    as_ai, as_real = explain(seed, image), explain(flipped, image)
    assert as_ai.ai_probability == pytest.approx(1 - as_real.ai_probability, abs=1e-6)
    assert not np.allclose(as_ai.heatmap, as_real.heatmap)


def test_explain_accepts_paths_bytes_and_arrays_and_names_bad_input(seed, tmp_path):
    array = random_image(5)
    path = tmp_path / "a.png"
    path.write_bytes(encode(array, "PNG"))
    maps = [heatmap(seed, item) for item in (array, path, path.read_bytes())]
    assert all(np.allclose(maps[0], m) for m in maps[1:])
    with pytest.raises(ImageDecodeError, match="broken.jpg: not a recognised image"):
        heatmap(seed, b"nope", name="broken.jpg")
    with pytest.raises(ImageDecodeError, match="expected an \\(H, W, 3\\) uint8"):
        heatmap(seed, np.zeros((8, 8), np.uint8))


def test_overlay_is_an_upscaled_png_with_both_panels(seed):
    image = random_image(2)
    png = overlay_png(image, heatmap(seed, image), title="test")
    overlay = Image.open(io.BytesIO(png))
    assert overlay.format == "PNG" and overlay.width >= 600
    with pytest.raises(InvalidArgumentError, match="finite 2-D heatmap"):
        overlay_png(image, np.full((4, 4), np.nan))


def explain_with_seed_gradcam(*args, out):
    """`fakelens explain` with the shipped seed model's Keras file, whose heatmaps are Grad-CAM."""
    command = ["explain", *map(str, args), "--out", str(out), "-m", "seed", "--backend", "keras"]
    return CliRunner().invoke(app, command)


def test_explain_command_writes_overlay_map_and_record_and_exits_1_on_bad_files(tmp_path):
    images = []
    for i, name in enumerate(("a.png", "b.jpg")):
        images.append(tmp_path / name)
        images[-1].write_bytes(encode(random_image(i), "PNG" if name.endswith("png") else "JPEG"))
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff truncated")
    out = tmp_path / "out"
    result = explain_with_seed_gradcam(*images, tmp_path / "bad.jpg", out=out)
    assert result.exit_code == 1, result.output
    assert "bad.jpg: corrupt or truncated JPEG" in result.output
    for stem in ("a", "b"):
        record = json.loads((out / f"{stem}.json").read_text())
        assert record["model"] == "seed" and record["label"] in ("ai", "real")
        assert record["heatmap_method"] == "gradcam" and record["gradcam_layer"]
        assert np.load(out / record["heatmap"]).shape == (32, 32)
        assert Image.open(out / record["overlay"]).format == "PNG"
        assert record["evidence"] == []


def test_each_overlay_spans_its_own_map_beside_a_32x32_image(tmp_path):
    """A large photo's map is far weaker than a CIFAKE-sized image's; on a shared colour scale it
    was drawn blank. By default each overlay spans its own map; --shared-scale is the opt-in."""
    large, small = tmp_path / "large.jpg", tmp_path / "small.png"
    large.write_bytes(encode(smooth_image(900, 1200), "JPEG"))
    small.write_bytes(encode(random_image(1), "PNG"))
    out = tmp_path / "out"
    for flags in ([], ["--shared-scale"]):
        result = explain_with_seed_gradcam(large, small, *flags, out=out)
        assert result.exit_code == 0, result.output
        records = [json.loads((out / f"{stem}.json").read_text()) for stem in ("large", "small")]
        maxima = [r["heatmap_max"] for r in records]
        assert all(m > 0 for m in maxima) and max(maxima) > 2 * min(maxima)
        expected = [max(maxima)] * 2 if flags else maxima
        assert [r["colour_scale_max"] for r in records] == pytest.approx(expected)


def test_asking_for_gradcam_loads_a_shipped_models_keras_file(tmp_path):
    """A shipped name runs its ONNX export, which has no layers to weigh: --method gradcam asks
    for the Keras file instead; the default method on the export is occlusion."""
    image = tmp_path / "a.png"
    image.write_bytes(encode(random_image(0), "PNG"))
    for method, made in (("gradcam", "gradcam"), ("auto", "occlusion")):
        out = tmp_path / method
        result = CliRunner().invoke(
            app, ["explain", str(image), "-m", "seed", "--method", method, "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
        assert json.loads((out / "a.json").read_text())["heatmap_method"] == made
