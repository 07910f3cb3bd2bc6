"""Training on one process or on several workers, with `tf.distribute.MultiWorkerMirroredStrategy`.

Workers find each other through `TF_CONFIG` (see docs/scaling.md). Every worker builds the same
global batches and keeps its slice of each (`data.pipeline.Shard`); gradients are summed across
workers every step. Only the chief writes the run directory: the others write to a temporary
directory that is removed afterwards, as TensorFlow's guide advises, since saving may need every
worker to take part.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tensorflow as tf

from fakelens.errors import RunConfigError
from fakelens.training.pipeline import Shard

#: `fakelens train --strategy`: one process, or workers described by TF_CONFIG.
STRATEGIES = ("local", "multiworker")
LAUNCH_HINT = "see docs/scaling.md for how to launch workers"


@dataclass(frozen=True)
class Workers:
    """The strategy this process trains under, and its place among the workers."""

    strategy: tf.distribute.Strategy
    rank: int = 0
    count: int = 1

    @property
    def chief(self) -> bool:
        """Worker 0 (or the task named `chief`): the one whose files are kept."""
        return self.rank == 0

    def distribute(self, make: Callable[[Shard], tf.data.Dataset]) -> Any:
        """`make(shard)` for this worker, handed to the strategy as per-worker input."""
        if self.count == 1:
            return make(Shard())
        return self.strategy.distribute_datasets_from_function(
            lambda context: make(Shard(context.input_pipeline_id, context.num_input_pipelines))
        )

    def fit(self, model: Any, batches: Any, **options: Any) -> Any:
        """`model.fit(batches, **options)`, under this strategy.

        Keras 3 cannot yet `fit` under MultiWorkerMirroredStrategy as it stands
        (keras-team/keras#20585): before the first step it averages a distributed (images,
        targets) batch across workers, which that strategy cannot do for a tuple; after each
        step it averages the scalar logs along an axis 0 they lack. So the model is told of no
        strategy (its optimizer is built beforehand, and `fit` runs in the strategy's scope,
        where Keras finds the strategy for every step), and the steps return their logs as
        one-element vectors. The metric variables are mirrored, summed across workers on every
        update, so every worker's logs are already the global figures: averaging changes nothing.
        """
        if self.count == 1:
            return model.fit(batches, **options)
        with self.strategy.scope():
            model.optimizer.build(model.trainable_variables)
            model._distribute_strategy = None  # see above
            model.train_step = _vector_logs(model.train_step)
            model.test_step = _vector_logs(model.test_step)
            return model.fit(batches, **options)

    @contextmanager
    def output_root(self, root: Path) -> Iterator[Path]:
        """`root` on the chief; a temporary directory, removed afterwards, on the other workers."""
        if self.chief:
            yield root
            return
        with tempfile.TemporaryDirectory(prefix=f"fakelens-worker{self.rank}-") as scratch:
            yield Path(scratch)


def _vector_logs(step: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    return lambda data: {name: tf.reshape(value, [1]) for name, value in step(data).items()}


def start_workers(strategy: str) -> Workers:
    """The strategy named; call before any other TensorFlow op (collectives are set up at start)."""
    if strategy == "local":
        return Workers(tf.distribute.get_strategy())
    if strategy != "multiworker":
        raise RunConfigError(f"strategy must be one of {', '.join(STRATEGIES)}; received {strategy!r}")
    rank, count = _cluster_position(os.environ.get("TF_CONFIG"))
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING
    )
    distributed = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if distributed.num_replicas_in_sync != count:
        raise RunConfigError(
            f"--strategy multiworker trains one replica per worker; this cluster of {count} worker(s) "
            f"has {distributed.num_replicas_in_sync} replicas (hide extra GPUs with CUDA_VISIBLE_DEVICES)"
        )
    return Workers(distributed, rank, count)


def _cluster_position(text: str | None) -> tuple[int, int]:
    """(rank, worker count) from TF_CONFIG's text; the chief, if listed, is rank 0."""
    if not text:
        raise RunConfigError(
            f"--strategy multiworker needs the TF_CONFIG environment variable; {LAUNCH_HINT}"
        )
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        task_type, index = task["type"], int(task["index"])
        chiefs, workers = len(cluster.get("chief", [])), len(cluster.get("worker", []))
    except (ValueError, KeyError, TypeError) as exc:
        raise RunConfigError(
            f"TF_CONFIG is not a cluster description ({exc!r}); received {text!r}; {LAUNCH_HINT}"
        ) from None
    if task_type not in ("chief", "worker") or chiefs > 1:
        raise RunConfigError(
            f"TF_CONFIG: expected at most one chief and tasks of type chief or worker; received {text!r}"
        )
    return index if task_type == "chief" else chiefs + index, chiefs + workers
