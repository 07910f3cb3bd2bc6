"""Occlusion maps, for models without Keras gradients: shape and aspect, the number of model
passes, a map that finds the one region a model looks at (so the map can fail), the
model-randomisation sanity check, the choice of method, and `fakelens explain` and the scan
report on an ONNX model."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import encode, random_image
from PIL import Image
from typer.testing import CliRunner

from fakelens.cli import app
from fakelens.errors import InvalidArgumentError
from fakelens.explain import occlusion
from fakelens.explain.heatmaps import choose_method, explain, fit_size
from fakelens.inference.detector import Detector, load_detector
from fakelens.models.card import ModelCard
from fakelens.weights import shipped_model_path

runner = CliRunner()


@pytest.fixture(scope="module")
def patchres_onnx() -> Detector:
    return load_detector("patchres", backend="onnx")


class RegionDetail:
    """A made-up model: P(AI) rises with the fine detail (pixel spread) inside one region of
    its input; nothing outside the region matters."""

    def __init__(self, rows: slice = slice(None), cols: slice = slice(None)) -> None:
        self.rows, self.cols = rows, cols

    def predict_on_batch(self, images: np.ndarray) -> np.ndarray:
        region = images[:, self.rows, self.cols].astype(np.float64)
        spread = region.reshape(len(images), -1, 3).std(axis=1).mean(axis=1)
        return 1.0 / (1.0 + np.exp(-(spread - 40.0) / 10.0))[:, None]


def region_detector(model: RegionDetail, fit: str = "stretch") -> Detector:
    card = ModelCard(name="region", architecture="made-up", output="p_ai", fit=fit)
    return Detector(model, card, batch_size=16)


def correlation(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.corrcoef(first.ravel(), second.ravel())[0, 1])


@pytest.mark.parametrize("size", [(32, 32), (40, 100), (1200, 600)])
def test_an_onnx_model_gets_a_map_at_the_input_aspect_and_the_score_predict_gives(patchres_onnx, size):
    image = random_image(sum(size), size)
    explanation = occlusion.explain(patchres_onnx, image)
    heat = explanation.heatmap
    assert heat.shape == explanation.image.shape[:2] == fit_size(size)
    assert heat.dtype == np.float32 and np.isfinite(heat).all() and (heat >= 0).all()
    assert (explanation.method, explanation.layer) == ("occlusion", None)
    assert explanation.ai_probability == patchres_onnx.predict([image])[0].ai_probability


@pytest.mark.parametrize("grid", [1, 3, 7])
def test_the_model_runs_grid_squared_plus_two_times(patchres_onnx, monkeypatch, grid):
    scored = []
    predict_proba = patchres_onnx.predict_proba
    monkeypatch.setattr(
        patchres_onnx, "predict_proba", lambda images: scored.append(len(images)) or predict_proba(images)
    )
    occlusion.explain(patchres_onnx, random_image(0), grid=grid)
    assert sum(scored) == grid**2 + 2


def test_a_grid_below_one_is_refused(patchres_onnx):
    with pytest.raises(InvalidArgumentError, match="grid must be at least 1; received grid=0"):
        occlusion.explain(patchres_onnx, random_image(0), grid=0)


@pytest.mark.parametrize(
    "rows, cols",
    [(slice(0, 16), slice(0, 16)), (slice(16, 32), slice(16, 32)), (slice(8, 24), slice(20, 32))],
)
def test_the_map_peaks_on_the_only_region_the_model_looks_at(rows, cols):
    heat = occlusion.explain(region_detector(RegionDetail(rows, cols)), random_image(3)).heatmap
    inside = np.zeros(heat.shape, bool)
    inside[rows, cols] = True
    assert inside[np.unravel_index(heat.argmax(), heat.shape)]
    assert heat[inside].mean() > 5 * heat[~inside].mean()


def test_a_centre_cropping_model_gets_nothing_where_it_never_looks():
    """The windows are cut from the whole image and prepared as the model prepares any image,
    so a model that crops (`fit="crop"`) gets its map over the part it sees."""
    heat = occlusion.explain(region_detector(RegionDetail(), fit="crop"), random_image(4, (32, 96))).heatmap
    assert heat.shape == (32, 96)
    assert heat[:, :6].max() == 0 and heat[:, -6:].max() == 0
    assert heat[:, 36:60].min() > 0


def test_the_map_changes_when_the_top_layers_are_randomised(patchres_onnx):
    """Cascading model randomisation (Adebayo et al., 2018): the same weights give the same map
    (the Keras model and its ONNX export); the head and the last residual block re-drawn at
    random, top down, a different one. (The head alone is not enough for the shipped model:
    over its 128 pooled features a random head's maps still correlated 0.43-0.67.)"""
    trained = load_detector("patchres", backend="keras")
    model = keras.models.clone_model(trained.model)
    model.set_weights(trained.model.get_weights())
    weighted = [
        layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
    ]
    rng = np.random.default_rng(1)
    for layer in weighted[-3:]:  # the head, then the last block's two convolutions
        kernel, *rest = layer.get_weights()
        layer.set_weights([rng.normal(0, kernel.std(), kernel.shape).astype(np.float32), *rest])
    randomised = Detector(model, trained.card)
    for seed in (1, 2):
        image = random_image(seed)
        maps = [occlusion.explain(d, image).heatmap for d in (trained, patchres_onnx, randomised)]
        assert maps[0].max() > 0
        assert correlation(maps[0], maps[1]) > 0.99
        assert correlation(maps[0], maps[2]) < 0.5


def test_auto_picks_grad_cam_for_keras_cnns_and_occlusion_for_the_rest(patchres_onnx):
    seed = load_detector("seed", backend="keras")
    assert choose_method(seed) == "gradcam" and choose_method(seed, "occlusion") == "occlusion"
    assert choose_method(patchres_onnx) == "occlusion"
    cropping = Detector(seed.model, seed.card.with_updates(fit="crop"))
    assert choose_method(cropping) == "occlusion"  # a Grad-CAM map is drawn over the whole image
    inputs = keras.Input((32, 32, 3))
    dense = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(inputs)))
    assert choose_method(Detector(dense, seed.card)) == "occlusion"
    assert explain(patchres_onnx, random_image(0)).method == "occlusion"
    with pytest.raises(
        InvalidArgumentError, match="Grad-CAM needs a Keras model; model 'patchres' is a OnnxModel"
    ):
        choose_method(patchres_onnx, "gradcam")
    with pytest.raises(InvalidArgumentError, match="one of auto, gradcam, occlusion; received 'lime'"):
        choose_method(seed, "lime")


def test_explain_command_on_an_onnx_model_writes_occlusion_maps(tmp_path):
    images = []
    for i, name in enumerate(("a.png", "b.jpg")):
        images.append(tmp_path / name)
        images[-1].write_bytes(encode(random_image(i, (40, 60)), "PNG" if name.endswith("png") else "JPEG"))
    out = tmp_path / "out"
    args = ["explain", *map(str, images), "--out", str(out), "-m", "patchres", "--backend", "onnx"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    records = [json.loads((out / f"{stem}.json").read_text()) for stem in ("a", "b")]
    for record in records:
        assert (record["heatmap_method"], record["gradcam_layer"]) == ("occlusion", None)
        assert np.load(out / record["heatmap"]).shape == (40, 60)
        assert Image.open(out / record["overlay"]).format == "PNG"
    assert all(0 < r["colour_scale_max"] == pytest.approx(r["heatmap_max"]) for r in records)  # its own
    refused = runner.invoke(app, [*args, "--method", "gradcam"])
    assert refused.exit_code == 2 and "Grad-CAM needs a Keras model" in refused.output


def test_explaining_an_onnx_model_never_imports_tensorflow(tmp_path):
    """The light install (`fakelens[onnx]`) has no TensorFlow; `fakelens explain` must not need it."""
    image = tmp_path / "a.png"
    image.write_bytes(encode(random_image(0), "PNG"))
    code = (
        "import sys; from typer.testing import CliRunner; from fakelens.cli import app; "
        f"args = ['explain', {str(image)!r}, '--out', {str(tmp_path / 'out')!r}, '-m', 'patchres', "
        "'--backend', 'onnx']; "
        "assert CliRunner().invoke(app, args).exit_code == 0; "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_scan_report_draws_occlusion_heatmaps_for_an_onnx_model(tmp_path):
    from fakelens.reporting.report import ReportOptions, write_report

    rows = [
        {
            "path": str(tmp_path / f"{i}.png"),
            "label": "ai",
            "ai_probability": 0.9,
            "model": "patchres",
            "error": None,
        }
        for i in range(2)
    ]
    for i, row in enumerate(rows):
        (tmp_path / row["path"]).write_bytes(encode(random_image(i), "PNG"))
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(row) + "\n" for row in rows))
    options = ReportOptions(model=str(shipped_model_path("patchres", ".onnx")), top=2)
    html = write_report(results, tmp_path / "r.html", options=options).read_text()
    assert "Heatmaps by patchres (occlusion)" in html
    assert html.count("<figure>") == 2 and "no heatmap" not in html
