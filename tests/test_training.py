"""Training runs end to end: run directory contents, reload, resume, evaluation."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fakelens.config import TrainConfig
from fakelens.data.dataset import load_labelled, train_val
from fakelens.errors import InvalidArgumentError, RunConfigError
from fakelens.evaluation.evaluate import evaluate
from fakelens.inference.detector import Detector
from fakelens.models.saving import load_model
from fakelens.training.run import train

pytestmark = pytest.mark.slow  # every test here trains a model


def tiny_config(tmp_path: Path, **changes) -> TrainConfig:
    base = {
        "epochs": 2,
        "batch_size": 8,
        "val_fraction": 0.25,
        "runs_dir": tmp_path / "runs",
    }
    return TrainConfig(**{**base, **changes})


def test_resume_continues_from_the_last_finished_epoch(tiny_layout, tmp_path):
    config = tiny_config(tmp_path, epochs=3)
    first = train(config, tiny_layout, quiet=True)
    run = first.run
    assert first.resumed_from_epoch == 0
    assert all(speed > 0 for speed in first.history["images_per_second"])
    load_model(run.checkpoint(3))[0].get_weights()
    # Simulate a kill during epoch 3, after its history row but before its checkpoint.
    run.model.unlink()
    run.checkpoint(3).unlink()
    checkpoint_two = load_model(run.checkpoint(2))[0].get_weights()
    again = train(config, tiny_layout, quiet=True)
    assert again.run.root == run.root and again.resumed_from_epoch == 2
    history = json.loads(run.history.read_text())
    assert len(history["loss"]) == 3 and history["loss"][:2] == first.history["loss"][:2]
    # The resumed epoch 3 started from checkpoint 2 and saw the same batches: same result.
    assert history["loss"][2] == pytest.approx(first.history["loss"][2], rel=1e-5)
    resumed = load_model(run.model)[0].get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(resumed, checkpoint_two))
    assert all(
        np.allclose(a, b, atol=1e-5)
        for a, b in zip(resumed, load_model(first.run.checkpoint(3))[0].get_weights())
    )


def test_resume_refuses_fewer_epochs_than_already_trained(tiny_layout, tmp_path):
    result = train(tiny_config(tmp_path), tiny_layout, quiet=True)
    result.run.model.unlink()
    with pytest.raises(RunConfigError, match="already trained 2 epochs, more than --epochs 1"):
        train(tiny_config(tmp_path, epochs=1), tiny_layout, quiet=True)


def test_a_finished_run_is_never_overwritten(tiny_layout, tmp_path):
    config = tiny_config(tmp_path, epochs=1)
    first = train(config, tiny_layout, quiet=True)
    second = train(config, tiny_layout, quiet=True)
    assert first.run.root.name == "seed" and second.run.root.name == "seed-2"


def test_unfinished_run_with_other_settings_is_refused(tiny_layout, tmp_path):
    config = tiny_config(tmp_path, epochs=1)
    result = train(config, tiny_layout, quiet=True)
    result.run.model.unlink()
    with pytest.raises(RunConfigError, match=r"seed: 42 -> 7.*--name"):
        train(tiny_config(tmp_path, epochs=1, seed=7), tiny_layout, quiet=True)


def test_split_depends_on_contents_not_on_the_source(tiny_layout, tmp_path):
    archive = tmp_path / "copy.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(tiny_layout.rglob("*.jpg"), reverse=True):
            z.write(path, path.relative_to(tiny_layout).as_posix())
    from_folder = train_val(load_labelled(tiny_layout, quiet=True), 0.25, seed=5)[1]
    from_zip = train_val(load_labelled(archive, quiet=True), 0.25, seed=5)[1]
    assert sorted(from_folder.sha256) == sorted(from_zip.sha256)
    other_seed = train_val(load_labelled(tiny_layout, quiet=True), 0.25, seed=6)[1]
    assert sorted(other_seed.sha256) != sorted(from_folder.sha256)


def test_end_to_end_on_a_cifake_subset(cifake_subset, tmp_path):
    config = TrainConfig(epochs=1, runs_dir=tmp_path / "runs", name="e2e")
    result = train(config, cifake_subset, quiet=True)
    run = result.run
    for path in (
        run.config,
        run.metadata,
        run.history,
        run.checkpoint(1),
        run.model,
        run.root / "loss.png",
        run.root / "accuracy.png",
    ):
        assert path.is_file(), path
    assert any(run.logs.rglob("events.out.tfevents*"))
    meta = json.loads(run.metadata.read_text())
    assert meta["seed"] == 42 and meta["data_key"] and meta["versions"]["keras"]
    assert meta["train_images"] + meta["val_images"] == len(
        load_labelled(cifake_subset, quiet=True).split("train").names
    )

    data = load_labelled(cifake_subset, quiet=True)
    test = data.split("test")
    detector = Detector.load(result.run.model)
    reloaded = Detector.load(result.run.model)
    first = detector.predict_proba(np.asarray(test.images))
    assert np.array_equal(first, reloaded.predict_proba(np.asarray(test.images)))
    accuracy = np.mean((first >= 0.5) == test.is_ai.astype(bool))
    assert accuracy > 0.6, "one epoch on 2,000 CIFAKE images should beat chance clearly"

    evaluation = evaluate(detector, cifake_subset, tmp_path / "eval", quiet=True)
    metrics = evaluation.metrics
    assert metrics["test"]["count"] == len(test.names)
    assert metrics["test"]["accuracy"] == pytest.approx(accuracy)
    leaked = np.isin(test.sha256, data.split("train").sha256).sum()
    assert leaked >= 20 and metrics["removed_as_leaked"] == leaked
    assert metrics["dedup_test"]["count"] == len(test.names) - leaked
    for name in ("metrics.json", "roc.png", "confusion.png"):
        assert (tmp_path / "eval" / name).is_file()


@pytest.mark.parametrize(
    ("field", "value"), [("epochs", 0), ("batch_size", -1), ("val_fraction", 1.0), ("limit", 1)]
)
def test_train_config_rejects_out_of_range_values(field, value):
    with pytest.raises(InvalidArgumentError, match=f"received {field}={value}"):
        TrainConfig(**{field: value})
