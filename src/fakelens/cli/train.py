"""`train` and `calibrate`: make a model, or refit a saved model's calibration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fakelens.cli.app import (
    DataOption,
    MaxFprOption,
    PrecisionOption,
    Quiet,
    ThresholdOption,
    app,
    finish,
    out,
    usage_errors,
)
from fakelens.config import TrainConfig
from fakelens.errors import InvalidArgumentError

#: The `train` options a probe model takes; the others are Keras training's.
PROBE_OPTIONS = ("model", "seed", "name", "runs_dir", "threshold")


@app.command()
@usage_errors
def train(
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Registered model name (see `fakelens models`).")
    ] = None,
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            "-d",
            help="Data set: a folder or zip laid out as train|test/REAL|FAKE (default: $FAKELENS_DATA, "
            "else ../shared/data/cifake/cifake.zip). Probe models (clipprobe) take several, each also "
            "laid out as <source>/REAL|FAKE: --data wild.zip --data sd-unsplash.zip.",
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(help="Epochs in total, finished ones included (default: the model's recipe)."),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Training batch size (default: the model's recipe).")
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option(help="Peak learning rate (default: the model's recipe).")
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="AdamW weight decay; 0 = Adam (default: the model's recipe).")
    ] = None,
    schedule: Annotated[
        str | None, typer.Option(help="constant or cosine (default: the model's recipe).")
    ] = None,
    augment: Annotated[
        bool | None,
        typer.Option(
            "--augment/--no-augment", help="Web-degradation augmentation (default: the model's recipe)."
        ),
    ] = None,
    val_fraction: Annotated[
        float | None, typer.Option(help="Share of train/ held out for validation (default: 0.1).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Drives the split, the shuffles and the weight init (default: 42).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Train on a balanced subset of this many train/ images.")
    ] = None,
    threshold: ThresholdOption = None,
    max_false_positive_rate: MaxFprOption = None,
    name: Annotated[str | None, typer.Option(help="Run name (default: the model name).")] = None,
    runs_dir: Annotated[
        Path | None, typer.Option(help="Where run directories go (default: runs/train).")
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            help="local (one process), or multiworker: this process is one of the workers listed in "
            "$TF_CONFIG; start the same command on each (see docs/scaling.md)."
        ),
    ] = None,
    precision: PrecisionOption = None,
    quiet: Quiet = False,
) -> None:
    """Train a model into runs/train/<name>/ and calibrate it; the same command resumes an unfinished run."""
    from fakelens.data.layout import resolve_data_path
    from fakelens.models.probe import PROBE_MODELS

    # Options for `TrainConfig` fields; None keeps the config's default, or the model's recipe.
    chosen = {
        "model": model,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "schedule": schedule,
        "augment": augment,
        "val_fraction": val_fraction,
        "seed": seed,
        "limit": limit,
        "threshold": threshold,
        "max_false_positive_rate": max_false_positive_rate,
        "name": name,
        "runs_dir": runs_dir,
        "strategy": strategy,
        "precision": precision,
    }
    given = {option: value for option, value in chosen.items() if value is not None}
    if model in PROBE_MODELS:
        keras_only = [option for option in given if option not in PROBE_OPTIONS]
        if keras_only:
            raise InvalidArgumentError(
                f"{model} is a probe model (a frozen encoder and a fitted head); these options do not apply "
                f"to it: {', '.join('--' + k.replace('_', '-') for k in keras_only)}"
            )
        train_probe_model(
            model, data, seed=seed, name=name, runs_dir=runs_dir, threshold=threshold, quiet=quiet
        )
        return
    if data is not None and len(data) > 1:
        raise InvalidArgumentError(
            f"{model or 'this model'} trains on one data set; received --data {len(data)} times"
        )
    from fakelens.training.run import train as run_training

    result = run_training(TrainConfig(**given), resolve_data_path(data[0] if data else None), quiet=quiet)
    meta, card = result.metadata, result.card
    if result.resumed_from_epoch:
        out.print(f"Resumed from epoch {result.resumed_from_epoch}.")
    out.print(
        f"Trained {card.architecture} for {meta['epochs']} epoch(s) in {card.training['precision']} "
        f"on {meta['train_images']:,} images ({meta['train_seconds_total']:.0f} s, "
        f"median {meta['images_per_second_median']:,.0f} images/s)."
    )
    print_calibration(card)
    finish(result.run.root)


def train_probe_model(model: str, data: list[Path] | None, *, quiet: bool, **options: Any) -> None:
    """`train` for a probe model: embed (cached), judge by held-out source, fit, calibrate."""
    from fakelens.training.probe import ProbeConfig, train_probe

    if not data:
        raise InvalidArgumentError(
            f"{model} needs --data: one or more data sets laid out as <source>/REAL|FAKE or "
            "train|test/REAL|FAKE (e.g. --data wild.zip --data sd-unsplash.zip)"
        )
    chosen = {k: v for k, v in options.items() if v is not None}
    run = train_probe(ProbeConfig(model=model, data=tuple(data), **chosen), quiet=quiet)
    summary = run.metrics["loso"]["summary"]
    out.print(
        f"Leave-one-source-out: mean AUROC {summary['mean_auroc']:.3f} over {summary['sources']} sources, "
        f"worst {summary['worst_source']} {summary['worst_auroc']:.3f} (table: {run.root / 'loso.md'})."
    )
    for source, row in run.metrics.get("test", {}).items():
        auroc = "-" if row["auroc"] is None else f"{row['auroc']:.4f}"
        out.print(
            f"Test split of {source}: accuracy {row['accuracy']:.4f}, AUROC {auroc} ({row['images']} images)."
        )
    finish(run.root, (run.metrics["failures"].items(), "not decodable, left out"))


def print_calibration(card) -> None:
    val = card.metrics["val"]
    flagged = "n/a" if val["false_positive_rate"] is None else f"{val['false_positive_rate']:.4f}"
    out.print(
        f"Validation ({val['count']:,} images): accuracy {val['accuracy']:.4f} at threshold "
        f"{card.threshold:.4f}, real photos flagged {flagged}; temperature {card.temperature:.3f} "
        f"brings ECE {val['ece_uncalibrated']:.4f} -> {val['ece']:.4f}."
    )


@app.command()
@usage_errors
def calibrate(
    model: Annotated[Path, typer.Argument(help="A .keras file trained by fakelens.")],
    data: DataOption = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Where to write (default: <model>-calibrated.keras).")
    ] = None,
    threshold: ThresholdOption = None,
    max_false_positive_rate: MaxFprOption = None,
    quiet: Quiet = False,
) -> None:
    """Refit the temperature on the model's own validation split and set its operating point."""
    from fakelens.data.layout import resolve_data_path
    from fakelens.training.calibrate import recalibrate

    target = out_path or model.with_name(f"{model.stem}-calibrated.keras")
    card = recalibrate(
        model,
        resolve_data_path(data),
        target,
        threshold=threshold,
        max_false_positive_rate=max_false_positive_rate,
        quiet=quiet,
    )
    print_calibration(card)
    finish(target)
