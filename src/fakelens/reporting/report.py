"""`fakelens report`: one page a person can read, for a training run or a scan's results.

HTML reports are a single self-contained file (figures inline as data URIs, no scripts, no
network); Markdown reports (for READMEs) link their figures from a `<name>_files/` folder.

Everything a report shows from its inputs (file names, errors, model names, metadata findings)
may come from anyone who can name a file, so it is escaped: HTML by Jinja's autoescaping, with
a Content-Security-Policy that allows only the page's own style and inline images; Markdown by
`markdown_text`. A scan's results are checked row by row (`read_results`) before use.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import math
import os
import reprlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import markupsafe
import numpy as np

from fakelens.data.layout import printable_name
from fakelens.errors import InvalidArgumentError
from fakelens.evidence.declared import declaration
from fakelens.fsutil import atomic_path, write_text_atomic
from fakelens.plots import figure_png, score_histogram
from fakelens.reporting.mistakes import Tile, confident_mistakes, most_ai_like
from fakelens.scanning.results import any_cell_size

RESULT_SUFFIXES = (".csv", ".jsonl")
#: What every row of a scan's results has.
REQUIRED_COLUMNS = ("path", "label", "ai_probability", "error")
#: Rows of the scan's error table shown; the count of the rest is given.
ERRORS_SHOWN = 50
#: Findings shown per file in the evidence table; the count of the rest is given.
FINDINGS_SHOWN = 20
#: The fields of a metadata finding (`evidence.finding.Evidence`), all text.
FINDING_FIELDS = ("kind", "key", "value", "points_to", "strength")
#: Characters that would start Markdown markup (code, emphasis, links, table cells) in text.
_MARKDOWN_SPECIAL = str.maketrans({c: f"\\{c}" for c in "\\`*_[]|"} | {"\n": " ", "\r": " "})
#: Echoes values in errors: short, however long or deep what was received.
_PREVIEW = reprlib.Repr()
_PREVIEW.maxstring = _PREVIEW.maxother = 80
_PREVIEW.maxlevel = 2
_preview = _PREVIEW.repr


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
    """A scan: counts, the score histogram, the most AI-like files with heatmaps, the errors."""
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
        "tiles": [_tile(t, figures) for t in tiles],
        "notes": notes,
        "errors": errors[:ERRORS_SHOWN],
        "errors_more": max(0, len(errors) - ERRORS_SHOWN),
        "evidence_rows": with_evidence[:ERRORS_SHOWN],
        "evidence_more": max(0, len(with_evidence) - ERRORS_SHOWN),
        # None: the scan was made without --evidence, so nothing is known about declarations.
        "declared_counts": _declared_counts(declared) if any("declared" in r for r in rows) else None,
        "declared_rows": sorted(declared, key=lambda r: -(r["ai_probability"] or 0.0))[:ERRORS_SHOWN],
        "declared_more": max(0, len(declared) - ERRORS_SHOWN),
    }


def read_results(path: Path) -> list[dict[str, Any]]:
    """Rows of a scan's CSV or JSONL file, each checked and given the types the report relies on
    (`_result_row`); CSV's evidence column is parsed back from JSON.

    A line that is no result record refuses the whole file, naming the line: a report that left
    rows out would count wrong. A row with evidence has `declared` (None or the file's
    declaration), worked out from its evidence when the scan was made before that column existed.
    """
    try:
        with open(path, "rb") as handle, any_cell_size():
            lines = _text_lines(handle, path)
            records = (
                _csv_records(lines, path) if path.suffix.lower() == ".csv" else _jsonl_records(lines, path)
            )
            return [_result_row(record, f"{path}: line {number}") for number, record in records]
    except OSError as exc:
        raise InvalidArgumentError(f"{path}: not readable scan results ({exc})") from None


def _text_lines(handle: io.BufferedReader, path: Path) -> Iterator[str]:
    for number, line in enumerate(handle, 1):
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad_line(f"{path}: line {number}", "not UTF-8 text") from None


def _csv_records(lines: Iterator[str], path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) per CSV record; empty cells are None, evidence is parsed from JSON."""
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        if header is None:
            return
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise InvalidArgumentError(f"{path}: line 1: not scan results; missing columns {missing}")
        start = reader.line_num + 1
        for record in reader:
            number, start = start, reader.line_num + 1
            where = f"{path}: line {number}"
            if not record:  # a blank line
                continue
            if len(record) != len(header):
                raise _bad_line(where, f"{len(record)} fields where the header has {len(header)}")
            row: dict[str, Any] = {column: cell or None for column, cell in zip(header, record)}
            if row.get("evidence") is not None:
                row["evidence"] = _json(row["evidence"], f"{where}, evidence")
            yield number, row
    except csv.Error as exc:
        raise _bad_line(f"{path}: line {reader.line_num}", f"not CSV ({exc})") from None


def _jsonl_records(lines: Iterator[str], path: Path) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(lines, 1):
        if line.strip():
            yield number, _json(line, f"{path}: line {number}")


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise _bad_line(where, "JSON nested too deep") from None
    except ValueError as exc:
        raise _bad_line(where, f"not JSON ({exc})") from None


def _bad_line(where: str, what: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{where}: {what}; fix or remove that line, or rescan")


def _result_row(record: Any, where: str) -> dict[str, Any]:
    """`record` with the types the report relies on, or an error naming its line. A failed row's
    label and ai_probability are None, whatever the file held."""
    if not isinstance(record, dict):
        raise _bad_line(where, f"not a result record (a JSON object); received {_preview(record)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in record]
    if missing:
        raise _bad_line(where, f"not a result record: no {', '.join(missing)}")
    path = _text(record, "path", where)
    if path is None:
        raise _bad_line(where, f"path must be text; received {_preview(record['path'])}")
    where = f"{where} ({_preview(path)})"
    row = {
        **record,
        "path": path,
        "error": _text(record, "error", where),
        "model": _text(record, "model", where),
    }
    if row["error"] is None:
        if record["label"] not in ("ai", "real"):
            raise _bad_line(where, f"label must be ai or real; received {_preview(record['label'])}")
        row["ai_probability"] = _probability(record["ai_probability"], where)
    else:
        row["label"] = row["ai_probability"] = None
    if "declared" in record:
        row["declared"] = _text(record, "declared", where)
    if "evidence" in record:
        row["evidence"] = _findings(record["evidence"], where)
        row.setdefault("declared", declaration(row["evidence"]))
    return row


def _text(record: dict[str, Any], column: str, where: str) -> str | None:
    """A text cell: None when absent or empty."""
    value = record.get(column)
    if value is not None and not isinstance(value, str):
        raise _bad_line(where, f"{column} must be text; received {_preview(value)}")
    return _utf8(value) or None


def _utf8(text: str | None) -> str | None:
    """`text` as UTF-8 can hold it: a lone surrogate, which JSON can spell, as `\\uXXXX`."""
    return text and text.encode("utf-8", "backslashreplace").decode("utf-8")


def _probability(value: Any, where: str) -> float:
    number = math.nan
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        with contextlib.suppress(ValueError, OverflowError):
            number = float(value)
    if not 0.0 <= number <= 1.0:  # NaN too: what was no number
        raise _bad_line(where, f"ai_probability must be a number from 0 to 1; received {_preview(value)}")
    return number


def _findings(value: Any, where: str) -> list[dict[str, str]]:
    """Metadata findings: a list of objects whose fields (`FINDING_FIELDS`) are text."""
    findings = [] if value is None else value
    if not isinstance(findings, list) or not all(isinstance(item, dict) for item in findings):
        raise _bad_line(
            where, f"evidence must be a list of findings (JSON objects); received {_preview(value)}"
        )
    checked = []
    for item in findings:
        wrong = [field for field in FINDING_FIELDS if not isinstance(item.get(field, ""), str)]
        if wrong:
            raise _bad_line(where, f"a finding's {', '.join(wrong)} must be text; received {_preview(item)}")
        checked.append({field: _utf8(item.get(field, "")) for field in FINDING_FIELDS})
    return checked


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


def _tile(tile: Tile, figures: Figures) -> dict[str, str]:
    return {"caption": tile.caption, "path": tile.path, "image": figures(tile.png, "heatmap")}


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"{path}: not readable JSON ({exc})") from None
