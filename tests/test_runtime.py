"""The light runtime: ONNX export, the onnxruntime backend, and agreement with the Keras models."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from conftest import REPO, encode, fixed_sample, random_image
from typer.testing import CliRunner

from fakelens.cli import app
from fakelens.errors import InvalidArgumentError, ModelLoadError
from fakelens.export import export_model
from fakelens.inference.detector import Detector, load_detector
from fakelens.models.saving import read_card
from fakelens.weights import shipped_model_path, shipped_models


@pytest.fixture(scope="module")
def exported(seed_model_file, tmp_path_factory):
    return export_model(seed_model_file, tmp_path_factory.mktemp("onnx") / "seed.onnx")


def test_an_export_scores_like_its_keras_model_and_carries_the_card(seed_model_file, exported):
    images = np.random.default_rng(3).integers(0, 256, (50, 40, 24, 3), dtype=np.uint8)
    keras_detector = load_detector(seed_model_file)
    onnx_detector = load_detector(exported)
    expected = [r.ai_probability for r in keras_detector.predict(list(images))]
    got = [r.ai_probability for r in onnx_detector.predict(list(images))]
    assert np.max(np.abs(np.array(expected) - np.array(got))) < 1e-5
    card = read_card(seed_model_file)
    assert onnx_detector.card.name == card.name and onnx_detector.card.threshold == card.threshold
    # The temperature and P(REAL) -> P(AI) are inside the graph.
    assert onnx_detector.card.output == "p_ai" and onnx_detector.card.temperature == 1.0


def test_export_through_the_cli(seed_model_file, tmp_path):
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(app, ["export", str(seed_model_file), "--out", str(out)])
    assert result.exit_code == 0 and f"Results saved to {out}" in result.output
    assert Detector.load(out).name == "seed"
    refused = CliRunner().invoke(app, ["export", str(seed_model_file), "--format", "tflite"])
    assert refused.exit_code == 2 and "--format must be one of onnx; received 'tflite'" in refused.output


def test_backend_choice_and_bad_files_are_explained(seed_model_file, exported, tmp_path):
    assert load_detector("seed", backend="onnx").model.__class__.__name__ == "OnnxModel"
    with pytest.raises(
        InvalidArgumentError, match=r"runs \.onnx files; received .*seed\.keras; export it first"
    ):
        load_detector(seed_model_file, backend="onnx")
    with pytest.raises(InvalidArgumentError, match="backend must be one of keras, onnx; received 'tf'"):
        load_detector("seed", backend="tf")
    garbage = tmp_path / "bad.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="bad.onnx: onnxruntime could not load the model"):
        load_detector(garbage)


def test_scoring_with_onnx_never_imports_tensorflow(exported, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i}.jpg").write_bytes(encode(random_image(i, (64, 48))))
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from fakelens.inference.detector import load_detector
        from fakelens.scanning.scan import scan
        detector = load_detector({str(exported)!r})
        summary = scan(detector, {str(folder)!r}, Path({str(tmp_path / "r.csv")!r}), quiet=True)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        print(summary.scored, loaded)
    """)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "5 []", result.stderr


@pytest.mark.parametrize("name", [n for n in shipped_models() if shipped_model_path(n).suffix == ".keras"])
def test_shipped_onnx_models_are_exports_of_the_shipped_keras_models(name):
    onnx_card = load_detector(name, backend="onnx").card
    keras_card = read_card(shipped_model_path(name))
    runtime_view = keras_card.with_updates(output="p_ai", temperature=1.0)
    assert json.loads(onnx_card.to_json()) == json.loads(runtime_view.to_json())


@pytest.mark.parametrize("name", shipped_models())
def test_onnx_and_keras_agree_to_1e4_on_1000_cifake_test_images(name, cifake):
    with zipfile.ZipFile(cifake / "cifake.zip") as archive:
        test_names = sorted(n for n in archive.namelist() if n.startswith("test/") and n.endswith(".jpg"))
        images = [archive.read(n) for n in fixed_sample(test_names, 1000, seed=6)]
    keras_records = load_detector(name, backend="keras").predict(images)
    onnx_records = load_detector(name, backend="onnx").predict(images)
    difference = np.abs(
        np.array([r.ai_probability for r in keras_records])
        - np.array([r.ai_probability for r in onnx_records])
    )
    assert difference.max() <= 1e-4
    assert [r.label for r in keras_records] == [r.label for r in onnx_records]
