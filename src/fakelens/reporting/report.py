"""`fakelens report`: one page a person can read, for a training run or a scan's results.

HTML reports are a single self-contained file (figures inline as data URIs, no scripts, no
network; the table of all files sorts by radio buttons and CSS); Markdown reports (for READMEs)
link their figures from a `<name>_files/` folder.

Everything a report shows from its inputs (file names, errors, model names, metadata findings)
may come from anyone who can name a file, so it is escaped: HTML by Jinja's autoescaping, with
a Content-Security-Policy that allows only the page's own style and inline images; Markdown by
`markdown_text`. A scan's results are checked row by row (`read_results`) before use.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import markupsafe
import numpy as np

from fakelens.data.layout import FOLDER_LABELS, printable_name
from fakelens.errors import InvalidArgumentError
from fakelens.fsutil import atomic_path, write_text_atomic
from fakelens.plots import figure_png, score_histogram
from fakelens.reporting.mistakes import Tile, confident_mistakes, most_ai_like
from fakelens.scanning.reader import RESULT_SUFFIXES, read_results

#: What every row of a scan's results has.
#: Rows of the scan's error table shown; the count of the rest is given.
ERRORS_SHOWN = 50
#: Rows of the table of all files (3 sorted copies in HTML: about 0.5 MB per 1,000 rows of
#: 100-character paths); above it, the table holds the first rows of the results and says so.
FILES_SHOWN = 3000
#: The orders the table of all files is shown in: name A-Z; score high to low; label, then score.
_LABEL_ORDER = {"ai": 0, "real": 1, "error": 2}
_FILE_ORDERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "name": lambda e: (e["path"].casefold(), e["path"]),
    "score": lambda e: (e["score"] is None, -(e["score"] or 0.0), e["path"]),
    "label": lambda e: (_LABEL_ORDER[e["label"]], -(e["score"] or 0.0), e["path"]),
}
#: Findings shown per file in the evidence table; the count of the rest is given.
FINDINGS_SHOWN = 20
#: Characters that would start Markdown markup (code, emphasis, links, table cells) in text.
_MARKDOWN_SPECIAL = str.maketrans({c: f"\\{c}" for c in "\\`*_[]|"} | {"\n": " ", "\r": " "})


def markdown_text(value: Any) -> str:
    """`value` as Markdown that shows it as text: HTML and Markdown markup escaped, one line.
    `Markup` (the figures' addresses, which the report makes itself) passes as it is."""
    if isinstance(value, markupsafe.Markup):
        return value
    return str(markupsafe.escape(str(value).translate(_MARKDOWN_SPECIAL)))


def _csp_hash(style: str) -> str:
    """The Content-Security-Policy source that allows exactly this inline style."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(str(style).encode()).digest()).decode() + "'"


def _environment(**options: Any) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("fakelens.reporting", "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        **options,
    )


_HTML = _environment(autoescape=True)
_HTML.filters["csp_hash"] = _csp_hash
_MARKDOWN = _environment(finalize=markdown_text)


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
    """Turns PNG bytes into an image address: a data URI (HTML) or a file beside the report
    (Markdown); `Markup`, as the report makes it and nothing in it needs escaping."""

    def __init__(self, out: Path, markdown: bool) -> None:
        self.folder = out.with_name(f"{out.stem}_files") if markdown else None
        self.count = 0

    def __call__(self, png: bytes, name: str) -> markupsafe.Markup:
        if self.folder is None:
            return markupsafe.Markup("data:image/png;base64," + base64.b64encode(png).decode("ascii"))
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        with atomic_path(path) as tmp:
            tmp.write_bytes(png)
        # Percent-encoded: a link to a folder whose name has spaces, or bytes that are not UTF-8.
        return markupsafe.Markup(quote(os.fsencode(f"{self.folder.name}/{path.name}")))


def write_report(
    source: Path, out: Path, *, markdown: bool = False, options: ReportOptions | None = None
) -> Path:
    """Write the report on `source` (a run directory, or a scan's .csv/.jsonl/.parquet results) to `out`."""
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
        kinds = f"a training run directory or a scan's {', '.join(RESULT_SUFFIXES)} results"
        if not source.exists():
            raise InvalidArgumentError(f"{source}: no such file or folder; expected {kinds}")
        raise InvalidArgumentError(f"expected {kinds}; received {source}")
    template = _MARKDOWN.get_template("report.md.j2") if markdown else _HTML.get_template("report.html.j2")
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
        "title": f"Training run {printable_name(run.name)}",
        "source": printable_name(str(run)),
        "settings": {k: config[k] for k in sorted(config) if k != "data_key"},
        "facts": _run_facts(meta),
        "curves": curves,
        "evaluations": evaluations,
        "tiles": [_tile(t, figures) for t in tiles],
        "notes": notes,
    }


def scan_context(results: Path, figures: Figures, options: ReportOptions) -> dict[str, Any]:
    """A scan: counts, the score histogram, the most AI-like files with heatmaps, every file's
    score, the errors."""
    rows = read_results(results)
    scored = [r for r in rows if r["error"] is None]
    errors = [r for r in rows if r["error"] is not None]
    scores = np.array([r["ai_probability"] for r in scored])
    ai = sum(r["label"] == "ai" for r in scored)
    histogram = figures(figure_png(score_histogram(scores)), "scores") if len(scores) else None
    ranked = sorted(scored, key=lambda r: -r["ai_probability"])[: options.top]
    tiles, notes = most_ai_like(ranked, options) if ranked else ([], [])
    with_evidence = [
        _pointing(r) for r in rows if any(e["points_to"] != "unknown" for e in r.get("evidence", []))
    ]
    declared = [r for r in rows if r.get("declared")]
    files = _files_table(rows)
    tiles = [_tile(t, figures) for t in tiles]
    return {
        "kind": "scan",
        "title": f"Scan results {printable_name(results.name)}",
        "source": printable_name(str(results)),
        "counts": {
            "files": len(rows),
            "scored": len(scored),
            "ai": ai,
            "real": len(scored) - ai,
            "errors": len(errors),
        },
        "models": sorted({r["model"] or "?" for r in rows}),
        "histogram": histogram,
        "tiles": tiles,
        "notes": notes,
        "files": files,
        "labelled": files["labelled"] or any(t["truth"] for t in tiles),
        "errors": errors[:ERRORS_SHOWN],
        "errors_more": max(0, len(errors) - ERRORS_SHOWN),
        "evidence_rows": with_evidence[:ERRORS_SHOWN],
        "evidence_more": max(0, len(with_evidence) - ERRORS_SHOWN),
        # None: the scan was made without --evidence, so nothing is known about declarations.
        "declared_counts": _declared_counts(declared) if any("declared" in r for r in rows) else None,
        "declared_rows": sorted(declared, key=lambda r: -(r["ai_probability"] or 0.0))[:ERRORS_SHOWN],
        "declared_more": max(0, len(declared) - ERRORS_SHOWN),
    }


def folder_label(path: str) -> str | None:
    """The label a labelled data set's folder gives a file ("real" in a folder REAL, "ai" in FAKE:
    `data.layout.FOLDER_LABELS`), else None. A scan of such a set carries its truth in its paths."""
    parts = re.split(r"[\\/]", path)
    return FOLDER_LABELS.get(parts[-2]) if len(parts) > 1 else None


def _truth(path: str, label: str | None) -> dict[str, Any]:
    """What the folder says of a file, and whether the verdict `label` is then a false alarm."""
    truth = folder_label(path)
    return {"truth": truth, "false_alarm": truth == "real" and label == "ai"}


def _files_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The table of all files: the first `FILES_SHOWN` rows of the results, in each order it can
    be sorted in (the HTML page shows one at a time, chosen without script)."""
    entries = [
        {
            "path": r["path"],
            "label": r["label"] or "error",
            "score": r["ai_probability"],
            **_truth(r["path"], r["label"]),
        }
        for r in rows[:FILES_SHOWN]
    ]
    return {
        "orders": {key: sorted(entries, key=order) for key, order in _FILE_ORDERS.items()},
        "shown": len(entries),
        "total": len(rows),
        "labelled": any(e["truth"] for e in entries),
    }


def _pointing(row: dict[str, Any]) -> dict[str, Any]:
    """A row of the evidence table: its findings that point somewhere, the first `FINDINGS_SHOWN`."""
    pointing = [e for e in row["evidence"] if e["points_to"] != "unknown"]
    return {
        "path": row["path"],
        "findings": pointing[:FINDINGS_SHOWN],
        "more": len(pointing) - FINDINGS_SHOWN,
    }


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


def _tile(tile: Tile, figures: Figures) -> dict[str, Any]:
    return {
        "caption": tile.caption,
        "path": tile.path,
        "image": figures(tile.png, "heatmap"),
        **_truth(tile.path, tile.label),
    }


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"{path}: not readable JSON ({exc})") from None
