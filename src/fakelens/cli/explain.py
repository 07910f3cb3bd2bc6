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
    open_detector,
    out,
    report_failures,
    shown,
    usage_errors,
)


@app.command()
@usage_errors
def explain(
    images: Annotated[list[Path], typer.Argument(help="Image files to explain.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the files written.")] = Path(
        "explain"
    ),
    model: ModelOption = None,
    own_scale: Annotated[
        bool,
        typer.Option(
            "--own-scale",
            help="Give each overlay its own colour scale (default: one for all, so maps compare).",
        ),
    ] = False,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="gradcam (Keras CNNs), occlusion (any model, ONNX too: 51 model passes per image), "
            "or auto: Grad-CAM where it applies, else occlusion.",
        ),
    ] = "auto",
    trust_model: TrustModel = False,
    backend: BackendOption = None,
) -> None:
    """Why a verdict: per image, a heatmap overlay (<stem>.overlay.png), the raw map
    (<stem>.heatmap.npy) and the record with metadata evidence (<stem>.json)."""
    from fakelens.explain.files import Explained, explain_to_dir

    failures = []
    detector = open_detector(model, trust_model, backend=backend)
    results = explain_to_dir(detector, images, out_dir, shared_scale=not own_scale, method=method)
    for result in results:
        if not isinstance(result, Explained):
            failures.append(result)
            continue
        record = result.record
        pointing = [e for e in record["evidence"] if e["points_to"] != "unknown"]
        pointing_to = "; ".join(evidence_text(e) for e in pointing)
        out.print(
            f"{shown(record['path'])}\t{record['label']}\t{record['ai_probability']:.4f}\t"
            f"{shown(result.files[0])}\t{escape(pointing_to) or 'no metadata evidence'}",
            highlight=False,
        )
    out.print(f"Results saved to {shown(out_dir)}")
    report_failures(failures, "failed")


@app.command()
@usage_errors
def report(
    source: Annotated[
        Path, typer.Argument(help="A training run directory (runs/<name>) or a scan's .csv/.jsonl results.")
    ],
    out_path: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Report file (default: report.html, or report.md with --markdown)."),
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

    target = out_path or Path("report.md" if markdown else "report.html")
    options = ReportOptions(model=model, data=data, top=top, sample=sample, quiet=quiet)
    out.print(f"Results saved to {shown(write_report(source, target, markdown=markdown, options=options))}")
