"""`fakelens report`: one page a person can read, for a training run or a scan's results.

HTML reports are a single self-contained file (figures inline as data URIs, no scripts, no
network); Markdown reports (for READMEs) link their figures from a `<name>_files/` folder.
"""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from fakelens.errors import InvalidArgumentError
from fakelens.explain.declared import declaration
from fakelens.fsutil import atomic_path, write_text_atomic
from fakelens.reporting.mistakes import Tile, confident_mistakes, most_ai_like
from fakelens.reporting.plots import figure_png, score_histogram

RESULT_SUFFIXES = (".csv", ".jsonl")
#: Rows of the scan's error table shown; the count of the rest is given.
ERRORS_SHOWN = 50
_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("fakelens.reporting", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
_TEMPLATES.filters["cell"] = lambda value: str(value).replace("|", "\\|").replace("\n", " ")


@dataclass(frozen=True)
class ReportOptions:
    """What goes into a report and from where (None = the default described in `--help`)."""

    model: str | None = None
    data: Path | None = None
    top: int = 12
    sample: int = 2000
    seed: int = 0
    quiet: bool = False


class Figures:
    """Turns PNG bytes into an image address: a data URI (HTML) or a file beside the report (Markdown)."""

    def __init__(self, out: Path, markdown: bool) -> None:
        self.folder = out.with_name(f"{out.stem}_files") if markdown else None
        self.count = 0

    def __call__(self, png: bytes, name: str) -> str:
        if self.folder is None:
            return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        with atomic_path(path) as tmp:
            tmp.write_bytes(png)
        return f"{self.folder.name}/{path.name}"


def write_report(
    source: Path, out: Path, *, markdown: bool = False, options: ReportOptions | None = None
) -> Path:
    """Write the report on `source` (a run directory, or a scan's .csv/.jsonl) to `out`."""
    options = options or ReportOptions()
    if options.top < 0 or options.sample < 1:
        raise InvalidArgumentError(
            f"--top must be >= 0 and --sample >= 1; received {options.top}, {options.sample}"
        )
    figures = Figures(out, markdown)
    if source.is_dir():
        context = run_context(source, figures, options)
    elif source.is_file() and source.suffix.lower() in RESULT_SUFFIXES:
        context = scan_context(source, figures, options)
    else:
        raise InvalidArgumentError(
            f"expected a training run directory or a scan's .csv/.jsonl results; received {source}"
        )
    template = _TEMPLATES.get_template("report.md.j2" if markdown else "report.html.j2")
    write_text_atomic(out, template.render(**context))
    return out


def run_context(run: Path, figures: Figures, options: ReportOptions) -> dict[str, Any]:
    """A training run: its settings, curves, every evaluation in it, and confident mistakes."""
    config = _read_json(run / "config.json")
    meta = _read_json(run / "run.json")
    if not config and not (run / "history.json").exists():
        raise InvalidArgumentError(f"{run}: not a training run directory (no config.json or history.json)")
    curves = [
        figures(p.read_bytes(), p.stem) for p in (run / "loss.png", run / "accuracy.png") if p.is_file()
    ]
    evaluations = [_evaluation(path, figures) for path in sorted(run.glob("*/metrics.json"))]
    notes: list[str] = []
    tiles: list[Tile] = []
    if options.top:
        data = options.data or _first_data_path(evaluations)
        model = options.model or (str(run / "model.keras") if (run / "model.keras").is_file() else None)
        if data is None or model is None:
            notes.append(
                "Confident mistakes are not shown: "
                + ("no model.keras in the run (pass --model)" if model is None else "no data (pass --data)")
            )
        else:
            tiles, found = confident_mistakes(model, data, options)
            notes += found
    return {
        "kind": "run",
        "title": f"Training run {run.name}",
        "source": str(run),
        "settings": {k: config[k] for k in sorted(config) if k != "data_key"},
        "facts": _run_facts(meta),
        "curves": curves,
        "evaluations": evaluations,
        "tiles": [_tile(t, figures) for t in tiles],
        "notes": notes,
    }


def scan_context(results: Path, figures: Figures, options: ReportOptions) -> dict[str, Any]:
    """A scan: counts, the score histogram, the most AI-like files with heatmaps, the errors."""
    rows = read_results(results)
    scored = [r for r in rows if not r.get("error")]
    errors = [r for r in rows if r.get("error")]
    scores = np.array([float(r["ai_probability"]) for r in scored])
    ai = sum(r["label"] == "ai" for r in scored)
    histogram = figures(figure_png(score_histogram(scores)), "scores") if len(scores) else None
    ranked = sorted(scored, key=lambda r: -float(r["ai_probability"]))[: options.top]
    tiles, notes = most_ai_like(ranked, options) if ranked else ([], [])
    with_evidence = [r for r in rows if any(e["points_to"] != "unknown" for e in r.get("evidence") or [])]
    declared = [r for r in rows if r.get("declared")]
    return {
        "kind": "scan",
        "title": f"Scan results {results.name}",
        "source": str(results),
        "counts": {
            "files": len(rows),
            "scored": len(scored),
            "ai": ai,
            "real": len(scored) - ai,
            "errors": len(errors),
        },
        "models": sorted({r.get("model") or "?" for r in rows}),
        "histogram": histogram,
        "tiles": [_tile(t, figures) for t in tiles],
        "notes": notes,
        "errors": errors[:ERRORS_SHOWN],
        "errors_more": max(0, len(errors) - ERRORS_SHOWN),
        "evidence_rows": with_evidence[:ERRORS_SHOWN],
        "evidence_more": max(0, len(with_evidence) - ERRORS_SHOWN),
        # None: the scan was made without --evidence, so nothing is known about declarations.
        "declared_counts": _declared_counts(declared) if any("declared" in r for r in rows) else None,
        "declared_rows": sorted(declared, key=lambda r: -float(r["ai_probability"] or 0))[:ERRORS_SHOWN],
        "declared_more": max(0, len(declared) - ERRORS_SHOWN),
    }


def read_results(path: Path) -> list[dict[str, Any]]:
    """Rows of a scan's CSV or JSONL file; CSV's evidence column is parsed back from JSON.

    A row with evidence has `declared` (None or the file's declaration), worked out from its
    evidence when the scan was made before that column existed.
    """
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            if path.suffix.lower() == ".csv":
                rows = [dict(row) for row in csv.DictReader(handle)]
                for row in rows:
                    if "evidence" in row:
                        row["evidence"] = json.loads(row["evidence"]) if row["evidence"] else []
                    if row.get("declared") == "":
                        row["declared"] = None
            else:
                rows = [json.loads(line) for line in handle if line.strip()]
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise InvalidArgumentError(f"{path}: not readable scan results ({exc})") from None
    missing = [c for c in ("path", "label", "ai_probability", "error") if rows and c not in rows[0]]
    if missing:
        raise InvalidArgumentError(f"{path}: not scan results; missing columns {missing}")
    for number, row in enumerate(rows, 1):
        if isinstance(row.get("evidence"), list) and "declared" not in row:
            row["declared"] = declaration(row["evidence"])
        if not row.get("error"):
            try:
                row["ai_probability"] = float(row["ai_probability"])
            except (TypeError, ValueError):
                raise InvalidArgumentError(
                    f"{path}: result {number} ({row['path']}) has no valid ai_probability; "
                    f"received {row['ai_probability']!r}"
                ) from None
    return rows


def _declared_counts(declared: list[dict[str, Any]]) -> dict[str, int]:
    """How many files declare they are AI-made or captured, and how the pixel score agrees."""
    ai = [r for r in declared if str(r["declared"]).startswith("ai:")]
    real = [r for r in declared if not str(r["declared"]).startswith("ai:")]
    return {
        "ai": len(ai),
        "ai_scored_real": sum(r.get("label") == "real" for r in ai),
        "real": len(real),
        "real_scored_ai": sum(r.get("label") == "ai" for r in real),
    }


def _evaluation(metrics_path: Path, figures: Figures) -> dict[str, Any]:
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    folder = metrics_path.parent
    sets = [name for name in ("test", "dedup_test") if name in metrics]
    rows = [
        (label, [_number(get(metrics[s])) for s in sets])
        for label, get in (
            ("accuracy", lambda m: m["accuracy"]),
            ("AUROC", lambda m: m["auroc"]),
            ("ECE (15 bins)", lambda m: m["ece"]),
            ("precision, AI", lambda m: m["ai"]["precision"]),
            ("recall, AI", lambda m: m["ai"]["recall"]),
            ("precision, real", lambda m: m["real"]["precision"]),
            ("recall, real", lambda m: m["real"]["recall"]),
        )
    ]
    robustness = [
        (name, _number(m["accuracy"]), _number(m["auroc"]))
        for name, m in sorted(metrics.get("robustness", {}).items())
    ]
    plots = [figures(p.read_bytes(), f"{folder.name}-{p.stem}") for p in sorted(folder.glob("*.png"))]
    return {
        "name": folder.name,
        "data": metrics.get("data", ""),
        "columns": [f"{s} ({metrics[s]['count']:,})" for s in sets],
        "rows": rows,
        "robustness": robustness,
        "plots": plots,
    }


def _first_data_path(evaluations: list[dict[str, Any]]) -> Path | None:
    """The data the run's main evaluation used, if it is still there."""
    for evaluation in sorted(evaluations, key=lambda e: e["name"] != "evaluate"):
        if evaluation["data"] and Path(evaluation["data"]).exists():
            return Path(evaluation["data"])
    return None


def _run_facts(meta: dict[str, Any]) -> dict[str, str]:
    wanted: dict[str, Callable[[Any], str]] = {  # epochs and seed are among the settings
        "train_images": lambda v: f"{v:,}",
        "val_images": lambda v: f"{v:,}",
        "train_seconds_total": lambda v: f"{v:,.0f} s",
        "images_per_second_median": lambda v: f"{v:,.0f}",
        "git_commit": lambda v: str(v)[:10],
    }
    facts = {
        key.replace("_", " "): show(meta[key]) for key, show in wanted.items() if meta.get(key) is not None
    }
    versions = meta.get("versions") or {}
    if versions:
        facts["versions"] = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
    return facts


def _tile(tile: Tile, figures: Figures) -> dict[str, str]:
    return {"caption": tile.caption, "path": tile.path, "image": figures(tile.png, "heatmap")}


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"{path}: not readable JSON ({exc})") from None
