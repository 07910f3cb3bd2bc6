"""Training runs end to end: run directory contents, reload, resume, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fakelens.config import TrainConfig
from fakelens.data.dataset import load_labelled, train_val
from fakelens.errors import RunConfigError
from fakelens.evaluation.evaluate import evaluate
from fakelens.inference import Detector
from fakelens.training import train


def tiny_config(tmp_path: Path, **changes) -> TrainConfig:
    base = {"epochs": 2, "batch_size": 8, "val_fraction": 0.25, "runs_dir": tmp_path / "runs"}
    return TrainConfig(**{**base, **changes})


def test_resume_continues_from_the_last_finished_epoch(tiny_layout, tmp_path):
    config = tiny_config(tmp_path)
    first = train(config, tiny_layout, quiet=True)
    run = first.run
    assert first.resumed_from_epoch == 0
    # Simulate a kill during epoch 2: its checkpoint and the final model never got written.
    run.model.unlink()
    run.checkpoint(2).unlink()
    again = train(config, tiny_layout, quiet=True)
    assert again.run.root == run.root and again.resumed_from_epoch == 1
    history = json.loads(run.history.read_text())
    assert len(history["loss"]) == 2 and history["loss"][0] == first.history["loss"][0]
    assert run.model.exists()


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


def test_same_seed_gives_the_same_split(tiny_layout):
    data = load_labelled(tiny_layout, quiet=True)
    a = train_val(data, 0.25, seed=5)[1].names
    b = train_val(data, 0.25, seed=5)[1].names
    assert a.tolist() == b.tolist()


@pytest.mark.slow
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
    detector = Detector.load(result.model_path)
    reloaded = Detector.load(result.model_path)
    first = detector.predict_batch(np.asarray(test.images))
    assert np.array_equal(first, reloaded.predict_batch(np.asarray(test.images)))
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
