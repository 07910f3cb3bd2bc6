"""Multi-worker training: exact sharding, and two real workers on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fakelens
from fakelens.config import TrainConfig
from fakelens.errors import RunConfigError
from fakelens.inference.detector import Detector
from fakelens.models.saving import load_model
from fakelens.training.multiworker import _cluster_position
from fakelens.training.pipeline import Shard, training_batches
from fakelens.training.run import train


def epoch_rows(count: int, batch_size: int, shard: Shard) -> list[list[int]]:
    """The row of every image in each batch of one epoch (images hold their own index)."""
    images = np.arange(count, dtype=np.uint8).reshape(count, 1, 1, 1)
    batches = training_batches(images, np.zeros(count), batch_size, seed=5, shard=shard)
    steps = -(-count // batch_size)
    return [batch[:, 0, 0, 0].tolist() for batch, _ in batches.take(steps).as_numpy_iterator()]


@pytest.mark.parametrize(("count", "batch_size", "workers"), [(40, 8, 2), (41, 8, 3), (37, 8, 2)])
def test_shards_split_every_global_batch_and_see_each_example_once(count, batch_size, workers):
    whole = epoch_rows(count, batch_size, Shard())
    parts = [epoch_rows(count, batch_size, Shard(k, workers)) for k in range(workers)]
    for step, batch in enumerate(whole):
        joined = [row for part in parts for row in part[step]]
        assert all(part[step] for part in parts), "no worker may get an empty slice"
        if step < len(whole) - 1 or len(batch) >= workers:
            assert joined == batch  # together, the workers take the step one worker would
    seen = [row for part in parts for batch in part for row in batch]
    assert set(seen) == set(range(count))
    assert len(seen) - count < workers  # a tiny last batch is topped up, repeating < workers rows


def test_tf_config_is_checked_and_the_chief_is_rank_zero():
    cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    assert _cluster_position(json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})) == (
        2,
        3,
    )
    assert _cluster_position(json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})) == (
        0,
        3,
    )
    with pytest.raises(RunConfigError, match="needs the TF_CONFIG"):
        _cluster_position(None)
    with pytest.raises(RunConfigError, match="not a cluster description"):
        _cluster_position('{"cluster": {}}')


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def run_workers(data: Path, runs: Path, epochs: int, count: int = 2) -> list[str]:
    """`fakelens train --strategy multiworker` as `count` processes on loopback; their outputs."""
    hosts = [f"127.0.0.1:{port}" for port in free_ports(count)]
    source = str(Path(fakelens.__file__).parents[1])
    command = [sys.executable, "-c", "from fakelens.cli import app; app()", "train", "--data", str(data)]
    command += ["--epochs", str(epochs), "--batch-size", "8", "--val-fraction", "0.25"]
    command += ["--runs-dir", str(runs), "--strategy", "multiworker", "--quiet"]
    workers = []
    for index in range(count):
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]),
            "TF_CONFIG": json.dumps(
                {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
            ),
        }
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = []
    try:
        for worker in workers:
            output, _ = worker.communicate(timeout=150)
            outputs.append(output.decode(errors="replace"))
            assert worker.returncode == 0, outputs[-1][-3000:]
    finally:
        for worker in workers:
            worker.kill()
    return outputs


@pytest.mark.slow
@pytest.mark.distributed
def test_two_workers_train_what_one_would_and_the_chief_alone_writes(tiny_layout, tmp_path):
    runs = tmp_path / "runs"
    run_workers(tiny_layout, runs, epochs=1)
    assert [p.name for p in runs.iterdir()] == ["seed"]  # the other worker wrote elsewhere
    model, card = load_model(runs / "seed" / "model.keras")
    records = Detector(model, card).predict(sorted(tiny_layout.rglob("*.jpg")))
    assert all(r.error is None and 0 <= r.ai_probability <= 1 for r in records)

    local = train(
        TrainConfig(epochs=1, batch_size=8, val_fraction=0.25, runs_dir=tmp_path / "local"),
        tiny_layout,
        quiet=True,
    )
    ours = json.loads((runs / "seed" / "history.json").read_text())
    assert ours["loss"] == pytest.approx(local.history["loss"], rel=1e-5)
    alone = load_model(local.run.model)[0].get_weights()
    for mine, theirs in zip(model.get_weights(), alone):
        np.testing.assert_allclose(mine, theirs, atol=1e-5)

    (runs / "seed" / "model.keras").unlink()  # as if killed after epoch 1: the run is unfinished
    outputs = run_workers(tiny_layout, runs, epochs=2)
    assert all("Resumed from epoch 1." in output for output in outputs)
    assert sorted(p.name for p in (runs / "seed" / "checkpoints").iterdir()) == [
        "epoch_001.keras",
        "epoch_002.keras",
    ]
    assert len(json.loads((runs / "seed" / "history.json").read_text())["loss"]) == 2
