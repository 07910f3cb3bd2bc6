"""The registry, the seed architecture, the card and saving/loading."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from conftest import random_image

from fakelens.errors import InvalidArgumentError, ModelLoadError
from fakelens.models import ModelCard, available_models, create_model
from fakelens.models.saving import load_model, read_card, save_model


@pytest.mark.parametrize("name", sorted(available_models()))
def test_every_registered_model_builds_and_takes_raw_uint8_of_any_size(name):
    model, card = create_model(name)
    assert card.name == name
    for size in ((32, 32), (48, 40)):
        batch = np.stack([random_image(i, size) for i in range(2)])
        out = np.asarray(model.predict_on_batch(batch))
        assert out.shape == (2, 1) and ((out >= 0) & (out <= 1)).all()


def test_seed_is_the_original_notebook_architecture():
    model, card = create_model("seed")
    assert model.count_params() == 11_825
    layers = [
        (type(layer).__name__, getattr(layer, "filters", getattr(layer, "units", None)))
        for layer in model.layers
    ]
    assert layers == [
        ("InputLayer", None),
        ("Resizing", None),
        ("Rescaling", None),
        ("Conv2D", 16),
        ("MaxPooling2D", None),
        ("Conv2D", 32),
        ("MaxPooling2D", None),
        ("Conv2D", 16),
        ("MaxPooling2D", None),
        ("Flatten", None),
        ("Dense", 32),
        ("Dense", 1),
    ]
    assert [layer.kernel_size for layer in model.layers if isinstance(layer, keras.layers.Conv2D)] == [
        (3, 3)
    ] * 3
    assert model.layers[-1].activation.__name__ == "sigmoid"
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert model.loss == "binary_crossentropy"
    assert card.output == "p_real"


def test_unknown_model_name_suggests_the_closest():
    with pytest.raises(ValueError, match="Did you mean 'seed'"):
        create_model("sead")


def test_card_converts_p_real_to_ai_probability_in_one_place():
    card = ModelCard(name="m", architecture="seed", output="p_real")
    assert np.allclose(card.ai_probability(np.array([[0.9], [0.2]])), [0.1, 0.8])
    assert card.labels(np.array([0.5, 0.49])).tolist() == ["ai", "real"]  # P(REAL) <= 0.5 is AI
    assert card.training_target(np.array([1, 0])).tolist() == [0.0, 1.0]


def test_card_temperature_softens_but_keeps_order():
    warm = ModelCard(name="m", architecture="seed", output="p_ai", temperature=2.0)
    p = warm.ai_probability(np.array([0.1, 0.5, 0.99]))
    assert p[1] == pytest.approx(0.5) and 0.1 < p[0] < 0.5 and 0.5 < p[2] < 0.99


def test_card_rejects_unknown_output_and_bad_numbers():
    with pytest.raises(InvalidArgumentError, match="received 'p_fake'"):
        ModelCard(name="m", architecture="seed", output="p_fake")
    with pytest.raises(InvalidArgumentError, match="threshold must be a number from 0 to 1; received 1.5"):
        ModelCard(name="m", architecture="seed", threshold=1.5)


def test_card_json_round_trip():
    card = ModelCard(
        name="m", architecture="seed", threshold=0.3, temperature=1.5, metrics={"val": {"accuracy": 0.9}}
    )
    assert ModelCard.from_json(card.to_json()) == card


def test_save_load_round_trip_keeps_predictions_and_card(seed_model_file, tmp_path):
    model, card = load_model(seed_model_file)
    batch = np.stack([random_image(i) for i in range(4)])
    card = card.with_updates(threshold=0.42, temperature=1.7, training={"seed": 3})
    path = save_model(model, card, tmp_path / "again.keras")
    model2, card2 = load_model(path)
    assert card2 == card
    assert np.array_equal(model.predict_on_batch(batch), model2.predict_on_batch(batch))
    assert read_card(path).threshold == 0.42


def test_failed_save_leaves_the_previous_file_intact(seed_model_file, tmp_path, monkeypatch):
    model, card = load_model(seed_model_file)
    target = tmp_path / "model.keras"
    save_model(model, card, target)
    before = target.read_bytes()

    def broken_save(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(model, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        save_model(model, card, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_load_errors_name_the_file(tmp_path, seed_model_file):
    with pytest.raises(ModelLoadError, match="no such model file"):
        load_model(tmp_path / "missing.keras")
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError, match="junk.keras: not a readable"):
        load_model(junk)
    bare = tmp_path / "bare.keras"
    with zipfile.ZipFile(seed_model_file) as source, zipfile.ZipFile(bare, "w") as target:
        for name in source.namelist():
            if name != "fakelens_card.json":
                target.writestr(name, source.read(name))
    with pytest.raises(ModelLoadError, match="bare.keras: this .keras file has no fakelens model card"):
        load_model(bare)
    malformed = tmp_path / "malformed.keras"
    with zipfile.ZipFile(seed_model_file) as source, zipfile.ZipFile(malformed, "w") as target:
        for name in source.namelist():
            target.writestr(name, b'{"name": "x"}' if name == "fakelens_card.json" else source.read(name))
    with pytest.raises(ModelLoadError, match="malformed.keras: its model card is malformed"):
        load_model(malformed)


def test_saved_files_are_readable_by_others(seed_model_file):
    assert seed_model_file.stat().st_mode & 0o044 == 0o044


@pytest.mark.parametrize(("preset", "expected"), [(None, "1"), ("0", "0")])
def test_importing_fakelens_turns_onednn_on_unless_told_otherwise(preset, expected):
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    if preset is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = preset
    code = "import os, fakelens; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == expected
