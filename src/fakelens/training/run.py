"""Training runs: a run directory, atomic per-epoch checkpoints, resume after a kill.

`runs/train/<name>/` holds config.json, run.json (versions, git commit, data hash, seed, timing),
history.json, checkpoints/epoch_NNN.keras, logs/ (TensorBoard), loss.png, accuracy.png and,
once finished, model.keras. Running the same command again continues an unfinished run
from its last finished epoch.
"""

from __future__ import annotations

import itertools
import json
import platform
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

from fakelens.config import INPUT_SIZE, TrainConfig
from fakelens.data.cache import DecodedSet
from fakelens.data.dataset import load_labelled, train_val
from fakelens.errors import RunConfigError
from fakelens.fsutil import run_dirs, write_json_atomic
from fakelens.models import ModelCard, create_model, get_spec
from fakelens.models.precision import resolve_precision, with_precision
from fakelens.models.saving import load_model, save_model
from fakelens.training.calibrate import calibrate_on
from fakelens.training.multiworker import Workers, start_workers
from fakelens.training.pipeline import evaluation_batches, steps_per_epoch, training_batches

#: Config fields that must match for a run to be continued (epochs may grow).
_RESUME_KEYS = (
    "model",
    "batch_size",
    "learning_rate",
    "weight_decay",
    "schedule",
    "augment",
    "val_fraction",
    "seed",
    "limit",
    "data_key",
    "precision",
)
#: Values of resume keys that runs recorded before the key existed.
_RECORDED_BEFORE = {"precision": "fp32"}
_CHECKPOINT = re.compile(r"epoch_(\d{3,})\.keras$")


@dataclass(frozen=True)
class RunDir:
    root: Path

    config = property(lambda self: self.root / "config.json")
    metadata = property(lambda self: self.root / "run.json")
    history = property(lambda self: self.root / "history.json")
    checkpoints = property(lambda self: self.root / "checkpoints")
    logs = property(lambda self: self.root / "logs")
    model = property(lambda self: self.root / "model.keras")

    def checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch_{epoch:03d}.keras"

    def latest_checkpoint(self) -> tuple[int, Path] | None:
        found = [
            (int(m.group(1)), p)
            for p in self.checkpoints.glob("epoch_*.keras")
            if (m := _CHECKPOINT.search(p.name))
        ]
        return max(found) if found else None


@dataclass(frozen=True)
class TrainResult:
    run: RunDir
    card: ModelCard
    resumed_from_epoch: int
    history: dict[str, list[float]]
    metadata: dict[str, Any]


def choose_run_dir(config: TrainConfig, data_key: str) -> tuple[RunDir, dict[str, Any]]:
    """The run directory for this command: the unfinished run it continues, or a new one.

    A finished run of the same name is never overwritten: a new `<name>-2`, `-3`... is used.
    """
    base = config.name or config.model
    wanted = _config_record(config, data_key)
    for root in itertools.islice(run_dirs(config.runs_dir, base), 10_000):
        run = RunDir(root)
        if not run.config.exists():
            return run, wanted
        if run.model.exists():
            continue
        saved = json.loads(run.config.read_text(encoding="utf-8"))
        saved = {**_RECORDED_BEFORE, **saved}
        differing = [k for k in _RESUME_KEYS if saved.get(k) != wanted.get(k)]
        if differing:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {wanted.get(k)!r}" for k in differing)
            raise RunConfigError(
                f"{run.root} holds an unfinished run with other settings ({details}). "
                "Repeat its original command to resume it, or pass --name to start a new run."
            )
        return run, wanted
    raise RunConfigError(f"too many runs named {base!r} in {config.runs_dir}")


def _config_record(config: TrainConfig, data_key: str) -> dict[str, Any]:
    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    record["data_key"] = data_key
    return record


class _EpochRecorder(keras.callbacks.Callback):
    """After every epoch: history.json, then an atomic checkpoint.

    History can thus run one epoch ahead of the checkpoints after a kill, never behind; resume
    cuts it back to the checkpoint it continues from.
    """

    def __init__(self, run: RunDir, card: ModelCard, history: dict[str, list[float]], train_count: int):
        super().__init__()
        self.run, self.card, self.history, self.train_count = run, card, history, train_count

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()
        self._train_seconds: float | None = None

    def on_test_begin(self, logs: dict | None = None) -> None:
        if self._train_seconds is None:  # validation starts: the training part of the epoch is over
            self._train_seconds = time.perf_counter() - self._start

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - self._start
        train_seconds = self._train_seconds or seconds
        timing = {"epoch_seconds": seconds, "images_per_second": self.train_count / train_seconds}
        for key, value in {**(logs or {}), **timing}.items():
            self.history.setdefault(key, []).append(float(value))
        write_json_atomic(self.run.history, self.history)
        save_model(self.model, self.card, self.run.checkpoint(epoch + 1))


def train(config: TrainConfig, data_path: Path, *, quiet: bool = False) -> TrainResult:
    """Train `config.model` on the Kaggle-layout data at `data_path`; see the module docstring.

    With `config.strategy` "multiworker", this process is one of the workers TF_CONFIG lists
    (`distributed.multiworker`); every worker reads the run directory to resume, the chief alone
    writes it.
    """
    config = config.with_recipe(get_spec(config.model).recipe)  # an unknown name fails here, early
    config = replace(config, precision=resolve_precision(config.precision))  # recorded resolved
    workers = start_workers(config.strategy)
    data = load_labelled(data_path, INPUT_SIZE, quiet=quiet)
    train_set, val_set = train_val(data, config.val_fraction, config.seed, config.limit)
    run, record = choose_run_dir(config, data.key)
    with workers.output_root(run.root) as root:
        return _train_run(config, workers, data, train_set, val_set, run, RunDir(root), record, quiet)


def _train_run(
    config: TrainConfig,
    workers: Workers,
    data: DecodedSet,
    train_set: DecodedSet,
    val_set: DecodedSet,
    run: RunDir,
    out: RunDir,
    record: dict[str, Any],
    quiet: bool,
) -> TrainResult:
    """Train and calibrate, resuming from `run`'s checkpoints and writing to `out`."""
    out.root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out.config, record)
    steps = steps_per_epoch(len(train_set.names), config.batch_size)
    keras.utils.set_random_seed(config.seed)
    history: dict[str, list[float]] = {}
    start_epoch = 0
    latest = run.latest_checkpoint()
    with workers.strategy.scope():  # the model's variables are mirrored on every worker
        model, card = create_model(
            config.model, optimizer=make_optimizer(config, steps), precision=config.precision
        )
        if latest is not None:
            start_epoch, path = latest
            if start_epoch > config.epochs:
                raise RunConfigError(
                    f"{run.root} already trained {start_epoch} epochs, more than --epochs {config.epochs}; "
                    "pass --epochs of at least that, or --name to start a new run."
                )
            model, card = load_model(path)
            saved = json.loads(run.history.read_text(encoding="utf-8")) if run.history.exists() else {}
            history = {k: v[:start_epoch] for k, v in saved.items()}

    batches = workers.distribute(
        lambda shard: training_batches(
            train_set.images,
            card.training_target(train_set.is_ai),
            config.batch_size,
            seed=config.seed,
            first_epoch=start_epoch,
            augment=config.augment,
            shard=shard,
        )
    )
    validation = workers.distribute(
        lambda shard: evaluation_batches(
            val_set.images, card.training_target(val_set.is_ai), config.batch_size, shard=shard
        )
    )
    began = time.perf_counter()
    if start_epoch < config.epochs:
        workers.fit(
            model,
            batches,
            steps_per_epoch=steps,
            validation_data=validation,
            epochs=config.epochs,
            initial_epoch=start_epoch,
            callbacks=[
                keras.callbacks.TensorBoard(log_dir=str(out.logs)),
                _EpochRecorder(out, card, history, len(train_set.names)),
            ],
            shuffle=False,  # the batches are already shuffled, per epoch and seeded
            verbose=0 if quiet else (1 if sys.stdout.isatty() else 2),
        )

    from fakelens.plots import plot_history

    plot_history(history, out.root)
    metadata = _run_metadata(
        config, data, train_set, val_set, history, start_epoch, time.perf_counter() - began
    )
    metadata["workers"] = workers.count
    write_json_atomic(out.metadata, metadata)
    training_record = {k: record[k] for k in (*_RESUME_KEYS, "epochs")}  # what rebuilds the split
    model = with_precision(model, "fp32")  # shipped and calibrated as float32: it runs anywhere
    final_card = calibrate_on(
        model,
        card.with_updates(name=run.root.name, training=training_record),
        val_set,
        threshold=config.threshold,
        max_false_positive_rate=config.max_false_positive_rate,
    )
    save_model(model, final_card, out.model)  # last: its presence marks the run finished
    return TrainResult(run, final_card, start_epoch, history, metadata)


def make_optimizer(config: TrainConfig, steps: int) -> keras.optimizers.Optimizer:
    """Adam or AdamW, at a constant rate or with a one-epoch warm-up then cosine decay."""
    rate: float | keras.optimizers.schedules.LearningRateSchedule = config.learning_rate
    if config.schedule == "cosine":
        warmup = min(steps, config.epochs * steps // 2)
        rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=config.learning_rate / 10,
            decay_steps=config.epochs * steps - warmup,
            warmup_target=config.learning_rate,
            warmup_steps=warmup,
        )
    if config.weight_decay:
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=config.weight_decay)
    return keras.optimizers.Adam(learning_rate=rate)


def _run_metadata(
    config, data: DecodedSet, train_set, val_set, history, start_epoch, seconds
) -> dict[str, Any]:
    import tensorflow as tf

    import fakelens

    epoch_seconds = history.get("epoch_seconds", [])
    return {
        "seed": config.seed,
        "data_key": data.key,
        "data_failures": len(data.failures),
        "train_images": len(train_set.names),
        "val_images": len(val_set.names),
        "val_ai_fraction": float(np.mean(val_set.is_ai)) if len(val_set.names) else None,
        "epochs": len(epoch_seconds),
        "resumed_from_epoch": start_epoch,
        "train_seconds_total": float(np.sum(epoch_seconds)),
        "train_seconds_this_session": seconds,
        "images_per_second_median": float(np.median(history.get("images_per_second", [np.nan]))),
        "versions": {
            "fakelens": fakelens.__version__,
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
        "git_commit": _git_commit(),
        "machine": {"platform": platform.platform(), "processor": platform.machine()},
    }


def _git_commit() -> str | None:
    """The commit of the fakelens checkout, when running from one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
