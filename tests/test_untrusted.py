"""Model files that carry code: refused by the Python API, the CLI and the server unless trusted."""

from __future__ import annotations

import subprocess
import sys

import keras
import pytest
from clirun import run
from conftest import encode, random_image
from fastapi.testclient import TestClient

from fakelens.config import ServeConfig
from fakelens.errors import ModelLoadError
from fakelens.inference.detector import load_detector
from fakelens.models import create_model
from fakelens.models.saving import save_model
from fakelens.serving.app import create_app

REFUSED = r"refused: the file holds Python code .*--trust-model"


def tiny_model(middle: keras.layers.Layer) -> keras.Model:
    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(middle(inputs))
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(pooled))


@pytest.fixture(scope="module")
def lambda_file(tmp_path_factory):
    """A model whose Lambda layer is a Python lambda, saved by fakelens, card and all."""
    model = tiny_model(keras.layers.Lambda(lambda images: images / 255.0))
    return save_model(model, create_model("seed")[1], tmp_path_factory.mktemp("models") / "lambda.keras")


@pytest.fixture(scope="module")
def foreign_file(tmp_path_factory):
    """A model needing a custom class that this process does not know (registered only to save)."""

    @keras.saving.register_keras_serializable(package="elsewhere")
    class Backdoor(keras.layers.Layer):
        def call(self, images):
            return images

    path = tmp_path_factory.mktemp("models") / "foreign.keras"
    try:
        save_model(tiny_model(Backdoor()), create_model("seed")[1], path)
    finally:
        del keras.saving.get_custom_objects()["elsewhere>Backdoor"]
    return path


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(encode(random_image(1)))
    return path


def test_a_lambda_model_is_refused_by_name_unless_trusted(lambda_file):
    with pytest.raises(ModelLoadError, match=REFUSED) as caught:
        load_detector(lambda_file)
    assert str(caught.value).startswith(f"{lambda_file}: ")
    (record,) = load_detector(lambda_file, trust=True).predict(encode(random_image(2)))
    assert record.error is None and 0 <= record.ai_probability <= 1


@pytest.mark.parametrize("trust", [False, True])
def test_a_model_with_an_unknown_custom_class_is_refused_even_if_trusted(foreign_file, trust):
    unknown = r"foreign\.keras: refused: it needs the custom class 'Backdoor'"
    with pytest.raises(ModelLoadError, match=unknown):
        load_detector(foreign_file, trust=trust)


def test_the_cli_refuses_a_lambda_model_with_exit_2_and_trust_model_lifts_it(lambda_file, image):
    refused = run("predict", image, "--model", lambda_file)
    assert refused.exit_code == 2
    assert "lambda.keras: refused" in refused.output and "--trust-model" in refused.output
    trusted = run("predict", image, "--model", lambda_file, "--trust-model")
    assert trusted.exit_code == 0 and trusted.output.startswith(str(image))


def test_the_server_refuses_to_start_on_a_lambda_model_unless_trusted(lambda_file):
    app = create_app(ServeConfig(model=str(lambda_file)))
    with pytest.raises(ModelLoadError, match=REFUSED), TestClient(app):
        pass
    with TestClient(create_app(ServeConfig(model=str(lambda_file), trust_model=True))) as client:
        assert client.get("/readyz").status_code == 200
        response = client.post("/v1/predict", files=[("files", ("a.jpg", encode(random_image(3))))])
        assert response.status_code == 200 and response.json()["results"][0]["error"] is None


@pytest.mark.slow
def test_fakelens_serve_exits_with_the_reason_on_a_lambda_model(lambda_file):
    command = [sys.executable, "-c", "from fakelens.cli import app; app()", "serve"]
    command += ["--model", str(lambda_file), "--port", "0"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode != 0
    assert f"{lambda_file}: refused" in finished.stderr and "--trust-model" in finished.stderr
