"""`data info`, `data download` and `data show`: inspect, get and preview data sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fakelens.cli.app import (
    Quiet,
    data_app,
    finish,
    name_of,
    out,
    run_dir,
    usage_errors,
)


@data_app.command("info")
@usage_errors
def data_info(
    path: Annotated[Path | None, typer.Argument(help="Folder or zip (default: as for --data).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    quiet: Quiet = False,
) -> None:
    """Counts, classes, image sizes, formats, duplicates, and duplicates shared by train and test."""
    from fakelens.data.info import dataset_info
    from fakelens.data.layout import resolve_data_path

    info = dataset_info(resolve_data_path(path), quiet=quiet)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    table = Table(title=info["path"])
    for column in ("split", "real", "ai", "total"):
        table.add_column(column, justify="right" if column != "split" else "left")
    for split, counts in info["counts"].items():
        table.add_row(split, f"{counts['real']:,}", f"{counts['ai']:,}", f"{sum(counts.values()):,}")
    out.print(table)
    out.print(f"Image sizes (most common): {info['sizes']}")
    out.print(f"Formats: {info['formats']}")
    out.print(
        f"Byte-identical groups: {info['duplicate_groups']:,} ({info['duplicate_files']:,} files); "
        f"groups shared by train and test: {info['groups_across_train_and_test']:,} "
        f"({info['test_files_also_in_train']:,} test files also in train)"
    )
    finish(None, (info["unreadable"].items(), "unreadable"))


@data_app.command("download")
@usage_errors
def data_download(
    to: Annotated[
        Path | None, typer.Option("--to", help="Folder to download into (default: kagglehub's cache).")
    ] = None,
) -> None:
    """Download CIFAKE from Kaggle with kagglehub and print where it is."""
    from fakelens.config import DATA_ENV
    from fakelens.data.download import download_cifake

    path = download_cifake(to)
    out.print(f"CIFAKE is at {path}\nUse it with --data {path}, or export {DATA_ENV}={path}")


@data_app.command("show")
@usage_errors
def data_show(
    path: Annotated[Path | None, typer.Argument(help="Folder or zip (default: as for --data).")] = None,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="PNG file to write (default: runs/data-show/<data set name>/grid.png, -2, -3... "
            "when taken).",
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="train or test.")] = "train",
    count: Annotated[int, typer.Option(help="Images in the grid.")] = 32,
    seed: Annotated[int, typer.Option(help="Which images are drawn.")] = 0,
) -> None:
    """Save a labelled grid of randomly drawn images (the notebook's batch view)."""
    from fakelens.data.layout import resolve_data_path
    from fakelens.data.preview import preview_grid

    data = resolve_data_path(path)
    target = out_path or run_dir("data-show", name_of(data)) / "grid.png"
    finish(preview_grid(data, target, split=split, count=count, seed=seed))
