"""`evaluate`: a model's metrics on a labelled data set, per source and under re-encoding."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from fakelens.cli.app import (
    DataOption,
    PrecisionOption,
    Quiet,
    TrustModel,
    app,
    finish,
    open_detector,
    out,
    run_dir,
    usage_errors,
)


@app.command()
@usage_errors
def evaluate(
    model: Annotated[str, typer.Argument(help="A .keras file saved by fakelens, or a shipped model's name.")],
    data: DataOption = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder for metrics.json and plots (default: runs/evaluate/<model name>, -2, -3... "
            "when taken).",
        ),
    ] = None,
    robustness: Annotated[
        bool, typer.Option(help="Also score the test set after JPEG, rescaling, blur, noise, upscaling.")
    ] = False,
    reencode_jpeg: Annotated[
        int | None,
        typer.Option(
            help="Re-encode every image as JPEG at this quality first (sets whose classes differ in format)."
        ),
    ] = None,
    trust_model: TrustModel = False,
    precision: PrecisionOption = None,
    quiet: Quiet = False,
) -> None:
    """Metrics on the official test split and on the dedup test (test copies of train images removed)."""
    from fakelens.data.layout import resolve_data_path
    from fakelens.evaluation.evaluate import evaluate as run_evaluation

    detector = open_detector(model, trust_model, precision=precision)
    result = run_evaluation(
        detector,
        resolve_data_path(data),
        out_dir or run_dir("evaluate", detector.name),
        robustness=robustness,
        reencode_quality=reencode_jpeg,
        quiet=quiet,
    )
    out.print(metrics_table(result.metrics))
    for grouping in ("by_source", "by_generator"):
        if grouping in result.metrics:
            out.print(group_metrics_table(result.metrics[grouping], grouping.replace("by_", "")))
    if result.metrics["seen_in_training"]:
        out.print(
            "[bold yellow]warning:[/] the model was trained on this data set: these are training figures. "
            "Judge it on held-out sources (the leave-one-source-out table of its training run)."
        )
    if "robustness" in result.metrics:
        out.print(robustness_table(result.metrics["robustness"]))
    out.print(
        f"Removed from the dedup test as leaked from train: {result.metrics['removed_as_leaked']:,} images."
    )
    finish(result.out_dir, (result.metrics["undecodable_files"].items(), "not decodable, left out"))


def group_metrics_table(groups: dict[str, dict[str, Any]], kind: str) -> Table:
    table = Table(title=f"Per {kind}")
    for column in (kind, "AI", "real", "accuracy", "AUROC"):
        table.add_column(column, justify="left" if column == kind else "right")
    for name, row in groups.items():
        auroc = "-" if row["auroc"] is None else f"{row['auroc']:.4f}"
        table.add_row(
            escape(name or "(not stated)"), str(row["ai"]), str(row["real"]), f"{row['accuracy']:.4f}", auroc
        )
    return table


def robustness_table(results: dict[str, dict[str, float]]) -> Table:
    table = Table(title="Robustness (official test set)")
    for column in ("condition", "accuracy", "AUROC"):
        table.add_column(column, justify="left" if column == "condition" else "right")
    for name, measured in results.items():
        table.add_row(name, f"{measured['accuracy']:.4f}", f"{measured['auroc']:.4f}")
    return table


def metrics_table(metrics: dict[str, Any]) -> Table:
    sets = [name for name in ("test", "dedup_test") if name in metrics]
    table = Table(title=f"{metrics['model']} (threshold {metrics[sets[0]]['threshold']:.3f})")
    table.add_column("metric")
    for name in sets:
        table.add_column(f"{name} ({metrics[name]['count']:,})", justify="right")
    rows = [
        ("accuracy", lambda m: m["accuracy"]),
        ("AUROC", lambda m: m["auroc"]),
        ("ECE (15 bins)", lambda m: m["ece"]),
    ]
    for cls in ("ai", "real"):
        rows += [
            (f"{key} ({cls})", lambda m, c=cls, k=key: m[c][k])
            for key in ("precision", "recall", "f1", "average_precision")
        ]
    for label, get in rows:
        values = (get(metrics[name]) for name in sets)
        table.add_row(label, *("-" if value is None else f"{value:.4f}" for value in values))
    return table
