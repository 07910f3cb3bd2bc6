"""`predict` and `scan`: judge one image, or every image of a folder, zip, list or URI."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from fakelens.cli.app import (
    BackendOption,
    EvidenceOption,
    ModelOption,
    PrecisionOption,
    Quiet,
    TrustModel,
    app,
    evidence_text,
    finish,
    open_detector,
    out,
    plain,
    shown,
    usage_errors,
)
from fakelens.config import InferenceConfig
from fakelens.errors import InvalidArgumentError

if TYPE_CHECKING:
    from fakelens.scanning.scan import ScanSummary


@app.command()
@usage_errors
def predict(
    images: Annotated[list[Path], typer.Argument(help="Image files to judge.")],
    model: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per line.")] = False,
    trust_model: TrustModel = False,
    evidence: EvidenceOption = False,
    backend: BackendOption = None,
    precision: PrecisionOption = None,
) -> None:
    """Judge images: one tab-separated line each: path, label (ai/real), ai_probability."""
    records = open_detector(model, trust_model, backend=backend, precision=precision).predict(images)
    if evidence:
        from fakelens.evidence.attach import with_evidence

        records = [with_evidence(record, path) for record, path in zip(records, images)]
    for record in records:
        if as_json:
            typer.echo(json.dumps(record.to_dict(), ensure_ascii=False))
        elif record.error:
            typer.echo(f"{plain(record.path)}\terror\t{plain(record.error)}")
        else:
            typer.echo(f"{plain(record.path)}\t{record.label}\t{record.ai_probability:.4f}")
        if evidence and not as_json:
            if record.declared:
                typer.echo(f"\tdeclared: {plain(record.declared)}")
            for item in record.evidence or []:
                typer.echo(f"\tevidence: {plain(evidence_text(item))}: {item['value'][:80]!r}")
    if any(record.error for record in records):
        raise typer.Exit(1)


@app.command()
@usage_errors
def scan(
    source: Annotated[
        str,
        typer.Argument(
            help="A folder (searched recursively), a .zip, @FILE (paths listed one per line), "
            "- (paths on standard input), or a URI pyarrow can list (s3://, gs://, hdfs://, file:///)."
        ),
    ],
    out_path: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Results file: .csv, .jsonl or .parquet. If it exists, files it already has "
            "(same path, size and time) are skipped and the rest appended.",
        ),
    ] = Path("results.csv"),
    include: Annotated[
        list[str] | None,
        typer.Option(help='Only files whose relative path matches this glob, e.g. "test/*" (repeatable).'),
    ] = None,
    follow_links: Annotated[
        bool,
        typer.Option(
            "--follow-links",
            help="Also read symbolic links to files outside the scanned folder (by default each gets "
            "a row saying it was skipped, so a folder from elsewhere cannot make the scan read any "
            "file you can). Links to folders are never followed.",
        ),
    ] = False,
    model: ModelOption = None,
    backend: BackendOption = None,
    precision: PrecisionOption = None,
    batch_size: Annotated[
        int | None, typer.Option(help=f"Images per model call (default: {InferenceConfig.batch_size}).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help=f"Decoding threads (default: {InferenceConfig.workers}, or none of their own while "
            "images are cheap to read and decode, such as 32x32 JPEGs from a local disk)."
        ),
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Ignore rows already in --out and score every file again.")
    ] = False,
    trust_model: TrustModel = False,
    evidence: EvidenceOption = False,
    engine: Annotated[
        Literal["local", "ray"],
        typer.Option(
            help="local (this process), or ray: Ray Data, on a local instance or --ray-address; "
            "--out is then a directory of part files (see docs/scaling.md).",
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(help="With --engine ray: a running Ray cluster (e.g. auto, ray://host:10001)."),
    ] = None,
    ray_num_cpus: Annotated[
        int | None,
        typer.Option(help="With --engine ray and no address: CPUs of the local instance (default: all)."),
    ] = None,
    ray_actor_cpus: Annotated[
        int,
        typer.Option(
            help="With --engine ray: CPUs each scoring actor holds (one model copy, that many decoding "
            "threads); actors = cluster CPUs / this."
        ),
    ] = 1,
    quiet: Quiet = False,
) -> None:
    """Judge every image; one row per file (path,label,ai_probability,model,error,size,modified)."""
    if engine == "ray":
        if evidence:
            raise InvalidArgumentError("--evidence is available with --engine local only")
        from fakelens.scanning.ray_engine import ray_scan
        from fakelens.weights import DEFAULT_MODEL

        summary = ray_scan(
            model or DEFAULT_MODEL,
            source,
            out_path,
            include=include or (),
            backend=backend,
            precision=precision or "auto",
            trust=trust_model,
            batch_size=batch_size,
            workers=workers,
            address=ray_address,
            num_cpus=ray_num_cpus,
            actor_cpus=ray_actor_cpus,
            fresh=fresh,
            quiet=quiet,
            follow_links=follow_links,
        )
        loading = ", Ray's start and model loading included"
    else:
        from fakelens.scanning.scan import scan as run_scan

        began = time.perf_counter()
        detector = open_detector(model, trust_model, batch_size, backend, precision)
        loading = f", after {time.perf_counter() - began:.1f} s loading the model"
        summary = run_scan(
            detector,
            source,
            out_path,
            include=include or (),
            workers=workers,
            quiet=quiet,
            evidence=evidence,
            resume=not fresh,
            follow_links=follow_links,
        )
    print_summary(summary, loading)
    found_none = not summary.scored + len(summary.failures) + summary.already_done
    wanted = f" matching --include {' '.join(include)}" if include else ""
    finish(  # the exit code describes the finished file, not only this run
        summary.out,
        (summary.earlier_failures, "failed in an earlier run (file unchanged)"),
        (summary.failures, "failed"),
        ([(source, f"no image files found{wanted}")] if found_none else [], "warning"),
    )


def print_summary(summary: ScanSummary, loading: str) -> None:
    """What a scan did; `loading` says how long the model took to load (`summary.seconds` does
    not count it)."""
    total = summary.scored + len(summary.failures)
    out.print(
        f"Scored {summary.scored:,} of {total:,} images "
        f"({summary.ai:,} ai, {summary.scored - summary.ai:,} real) "
        f"in {summary.seconds:.1f} s ({summary.images_per_second:,.0f} images/s){loading}."
    )
    if summary.already_done:
        out.print(f"Already in {shown(summary.out)}, skipped: {summary.already_done:,} file(s).")
    if summary.not_images:
        out.print(
            f"Not scanned, no image file ending: {len(summary.not_images):,} file(s), "
            f"e.g. {shown(summary.not_images[0])}"
        )
