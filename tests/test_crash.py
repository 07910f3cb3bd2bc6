"""Crash safety: training killed with SIGKILL resumes from its last checkpoint, and files a user
keeps (models, reports) appear under their final name only once complete."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import encode, random_image

from fakelens.fsutil import atomic_path, write_text_atomic
from fakelens.inference.detector import load_detector
from fakelens.models import create_model
from fakelens.models.saving import load_model, save_model
from fakelens.training.run import RunDir

EPOCHS = 6


@pytest.mark.slow
def test_training_killed_mid_epoch_resumes_from_its_checkpoint_and_finishes(cifake_subset, tmp_path):
    command = [sys.executable, "-c", "from fakelens.cli import app; app()", "train", "--model", "seed"]
    command += ["--data", str(cifake_subset), "--limit", "1000", "--epochs", str(EPOCHS)]
    command += ["--runs-dir", str(tmp_path / "runs"), "-q"]
    run = RunDir(tmp_path / "runs" / "seed")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while run.latest_checkpoint() is None and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    time.sleep(0.1)  # into the next epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    assert not run.model.exists(), "training finished before it could be killed"
    killed_at, _ = run.latest_checkpoint()
    assert 1 <= killed_at < EPOCHS
    for path in run.checkpoints.glob("epoch_*.keras"):  # every checkpoint under its name is whole
        load_model(path, compile=False)

    finished = subprocess.run(command[:-1], capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert f"Resumed from epoch {killed_at}." in finished.stdout
    history = json.loads(run.history.read_text())
    assert len(history["loss"]) == EPOCHS
    assert json.loads(run.metadata.read_text())["resumed_from_epoch"] == killed_at
    (record,) = load_detector(run.model).predict(encode(random_image(1)))
    assert record.error is None and 0 <= record.ai_probability <= 1


SAVING_LOOP = """
import sys
from fakelens.models import create_model
from fakelens.models.saving import save_model
model, card = create_model("seed")
while True:
    save_model(model, card, sys.argv[1])
"""


@pytest.mark.slow
def test_a_process_killed_while_saving_leaves_a_whole_model_or_none(tmp_path):
    """SIGKILL lands at an arbitrary point of a save loop, most likely inside a save (each takes
    tens of milliseconds): the final name still holds a complete model."""
    target = tmp_path / "model.keras"
    process = subprocess.Popen([sys.executable, "-c", SAVING_LOOP, str(target)])
    deadline = time.monotonic() + 120
    while not target.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    time.sleep(0.37)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    load_model(target, compile=False)
    # A kill inside a save leaves its hidden temporary file beside the target, never the target.
    assert all(p == target or p.name.startswith(".model.keras.") for p in tmp_path.iterdir())


def test_a_model_save_that_fails_midway_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    model, card = create_model("seed")
    target = tmp_path / "model.keras"

    def torn_save(path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(model, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        save_model(model, card, target)
    assert list(tmp_path.iterdir()) == []  # neither the final name nor a temporary file


def test_a_failed_rewrite_keeps_the_old_file_whole(tmp_path):
    report = tmp_path / "report.html"
    write_text_atomic(report, "<p>old</p>")
    with pytest.raises(RuntimeError), atomic_path(report) as tmp:
        tmp.write_text("<p>new but unfin")
        raise RuntimeError("killed")
    assert report.read_text() == "<p>old</p>" and list(tmp_path.iterdir()) == [report]


def test_save_model_writes_through_atomic_path(tmp_path, monkeypatch):
    """Training's checkpoints and final model use `save_model`, which writes via `atomic_path`."""
    import fakelens.models.saving as saving

    used = []
    real = saving.atomic_path

    def spy(target):
        used.append(target)
        return real(target)

    monkeypatch.setattr(saving, "atomic_path", spy)
    model, card = create_model("seed")
    path = save_model(model, card, tmp_path / "m.keras")
    assert used == [path]
    reloaded, _ = load_model(path, compile=False)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), reloaded.get_weights()))
