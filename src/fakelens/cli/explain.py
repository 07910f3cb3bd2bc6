"""`explain` and `report`: why a verdict (heatmaps, metadata), and a scan's results as a page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from fakelens.cli.app import (
    BackendOption,
    ModelOption,
    Quiet,
    TrustModel,
    app,
    evidence_text,
    finish,
    name_of,
    open_detector,
    out,
    run_dir,
    shown,
    usage_errors,
)


@app.command()
@usage_errors
def explain(
    images: Annotated[list[Path], typer.Argument(help="Image files to explain.")],
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder for the files written (default: runs/explain/<model name>, -2, -3... when taken).",
        ),
    ] = None,
    model: ModelOption = None,
    own_scale: Annotated[
        bool,
        typer.Option(
            "--own-scale/--shared-scale",
            help="Each overlay's colours span its own map (default), or one scale for all, so maps "
            "of like images compare.",
        ),
    ] = True,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="gradcam (Keras CNNs; a shipped model's Keras file is loaded), occlusion (any model, "
            "ONNX too: 51 model passes per image), or auto: Grad-CAM where the loaded model allows it, "
            "else occlusion.",
        ),
    ] = "auto",
    trust_model: TrustModel = False,
    backend: BackendOption = None,
) -> None:
    """Why a verdict: per image, a heatmap overlay (<stem>.overlay.png), the raw map
    (<stem>.heatmap.npy) and the record with metadata evidence (<stem>.json)."""
    from fakelens.explain.files import Explained, explain_to_dir

    failures, explained = [], 0
    # Grad-CAM needs the Keras model: a shipped name otherwise loads its ONNX export.
    wants_keras = method == "gradcam" and backend is None and (model is None or not Path(model).exists())
    detector = open_detector(model, trust_model, backend="keras" if wants_keras else backend)
    out_dir = out_dir or run_dir("explain", detector.name)
    results = explain_to_dir(detector, images, out_dir, shared_scale=not own_scale, method=method)
    for result in results:
        if not isinstance(result, Explained):
            failures.append(result)
            continue
        explained += 1
        record = result.record
        pointing = [e for e in record["evidence"] if e["points_to"] != "unknown"]
        pointing_to = "; ".join(evidence_text(e) for e in pointing)
        out.print(
            f"{shown(record['path'])}\t{record['label']}\t{record['ai_probability']:.4f}\t"
            f"{shown(result.files[0])}\t{escape(pointing_to) or 'no metadata evidence'}",
            highlight=False,
        )
    finish(out_dir if explained else None, (failures, "failed"))


@app.command()
@usage_errors
def report(
    source: Annotated[
        Path,
        typer.Argument(
            help="A training run directory (runs/train/<name>) or a scan's .csv, .jsonl or .parquet results.",
            exists=True,
        ),
    ],
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Report file (default: runs/report/<name of SOURCE>/report.html, or report.md with "
            "--markdown; -2, -3... when taken).",
        ),
    ] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Markdown with figures in <name>_files/, for READMEs.")
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Model for heatmaps (default: the run's model.keras; for a scan, the model it used).",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            "-d",
            help="Data for a run's confident mistakes (default: the data its evaluation used).",
        ),
    ] = None,
    top: Annotated[int, typer.Option(help="Heatmap tiles: mistakes, or most AI-like files.")] = 12,
    sample: Annotated[int, typer.Option(help="Test images scored to find a run's mistakes.")] = 2000,
    quiet: Quiet = False,
) -> None:
    """One readable page: for a run, curves, metrics, ROC, confusion, reliability, robustness and the
    most confident mistakes; for a scan, counts, score histogram, the most AI-like files, errors.
    HTML is a single offline file with its images inline."""
    from fakelens.reporting.report import ReportOptions, write_report

    target = out_path or run_dir("report", name_of(source)) / ("report.md" if markdown else "report.html")
    options = ReportOptions(model=model, data=data, top=top, sample=sample, quiet=quiet)
    finish(write_report(source, target, markdown=markdown, options=options))
