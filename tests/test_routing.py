"""The routed default: the real-world model for photos, the CIFAKE model for tiny images."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import encode, random_image

from fakelens.errors import InvalidArgumentError
from fakelens.inference.detector import Detector, load_detector
from fakelens.inference.routing import SMALL_SIDE, RoutedDetector
from fakelens.models.card import ModelCard

pytest.importorskip("onnxruntime")


class MeanBrightness:
    """A stand-in large model: P(AI) is the mean pixel value."""

    pad_batches = False

    def predict_on_batch(self, images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), -1).mean(axis=1) / 255.0


@pytest.fixture(scope="module")
def routed() -> RoutedDetector:
    large = Detector(
        MeanBrightness(), ModelCard("large", "test", input_size=(224, 224), fit="crop", output="p_ai")
    )
    return RoutedDetector(large, load_detector("patchres", backend="onnx"))


def test_small_images_go_to_the_small_model_and_photos_to_the_large(routed):
    tiny = random_image(1, (32, 32))
    small_side = random_image(2, (SMALL_SIDE, 40))
    photo = random_image(3, (300, 200))
    records = routed.predict([encode(tiny), encode(small_side, "PNG"), encode(photo)])
    expected_small = routed.small.predict([encode(tiny), encode(small_side, "PNG")])
    assert [r.ai_probability for r in records[:2]] == pytest.approx(
        [r.ai_probability for r in expected_small]
    )
    assert records[2].ai_probability == pytest.approx(routed.large.predict(encode(photo))[0].ai_probability)
    assert {r.model for r in records} == {"auto"}


def test_scores_do_not_depend_on_the_batch(routed):
    images = [random_image(i, size) for i, size in enumerate([(32, 32), (120, 90), (48, 48), (256, 256)])]
    together = [r.ai_probability for r in routed.predict(images)]
    alone = [routed.predict(image)[0].ai_probability for image in images]
    assert together == alone


def test_a_blank_canvas_is_judged_exactly_by_the_small_model(routed):
    flat = np.full((300, 300, 3), 77, np.uint8)  # every pixel equal: "repeated" at any factor
    expected = routed.small.predict(np.full((32, 32, 3), 77, np.uint8))[0].ai_probability
    assert routed.predict(flat)[0].ai_probability == pytest.approx(expected)


def test_models_with_different_thresholds_cannot_be_routed():
    large = Detector(
        MeanBrightness(), ModelCard("large", "test", input_size=(224, 224), output="p_ai", threshold=0.7)
    )
    with pytest.raises(InvalidArgumentError, match=r"thresholds differ \(large 0.7, patchres 0.5\)"):
        RoutedDetector(large, load_detector("patchres", backend="onnx"))


def test_the_routed_default_scores_paths_like_any_detector(routed, tmp_path):
    """`predict_proba` prepares paths before routing them, as the base detector does."""
    small, large = tmp_path / "small.png", tmp_path / "large.jpg"
    small.write_bytes(encode(random_image(0), "PNG"))
    large.write_bytes(encode(random_image(1, (300, 400)), "JPEG"))
    by_path = routed.predict_proba([small, large])
    records = routed.predict([small, large])
    assert by_path.tolist() == pytest.approx([r.ai_probability for r in records])
