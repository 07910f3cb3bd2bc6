"""Result files read back, every row checked: what a report counts must be what the scan wrote.

CSV, JSONL and Parquet, as `scanning.results` writes them. A line that is no result record
refuses the whole file, naming the line: a report that left rows out would count wrong. Rows
get the types the record (`record.Prediction`) declares; CSV's and Parquet's evidence column
is parsed back from JSON.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import reprlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fakelens.errors import InvalidArgumentError
from fakelens.evidence.declared import declaration
from fakelens.record import FIELDS
from fakelens.scanning.results import FORMATS, PARQUET_HINT, any_cell_size

#: What a result file ends with.
RESULT_SUFFIXES = FORMATS
#: The fields a row must have: the rest (the model's name) can be missing from older files.
REQUIRED_COLUMNS = tuple(f for f in FIELDS if f != "model")
#: The fields of a metadata finding (`evidence.finding.Evidence`), all text.
FINDING_FIELDS = ("kind", "key", "value", "points_to", "strength")
#: Echoes values in errors: short, however long or deep what was received.
_PREVIEW = reprlib.Repr()
_PREVIEW.maxstring = _PREVIEW.maxother = 80
_PREVIEW.maxlevel = 2
_preview = _PREVIEW.repr


def read_results(path: Path) -> list[dict[str, Any]]:
    """Rows of a scan's CSV, JSONL or Parquet file, each checked and given the types the report
    relies on (`_result_row`).

    A row with evidence has `declared` (None or the file's declaration), worked out from its
    evidence when the scan was made before that column existed.
    """
    if path.suffix.lower() == ".parquet":
        return [_result_row(record, f"{path}: row {number}") for number, record in _parquet_records(path)]
    try:
        with open(path, "rb") as handle, any_cell_size():
            lines = _text_lines(handle, path)
            records = (
                _csv_records(lines, path) if path.suffix.lower() == ".csv" else _jsonl_records(lines, path)
            )
            return [_result_row(record, f"{path}: line {number}") for number, record in records]
    except OSError as exc:
        raise InvalidArgumentError(f"{path}: not readable scan results ({exc})") from None


def _parquet_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, row) per Parquet row, a row group at a time; evidence is parsed from JSON."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidArgumentError(f"{path}: {PARQUET_HINT}") from None
    try:
        table = pq.ParquetFile(path)
        missing = [c for c in REQUIRED_COLUMNS if c not in table.schema_arrow.names]
        if missing:
            raise InvalidArgumentError(f"{path}: not scan results; missing columns {missing}")
        number = 0
        for batch in table.iter_batches():
            for row in batch.to_pylist():
                number += 1
                if isinstance(row.get("evidence"), str):
                    row["evidence"] = _json(row["evidence"], f"{path}: row {number}, evidence")
                yield number, row
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InvalidArgumentError(f"{path}: not readable Parquet scan results ({exc})") from None


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
    if "size" in record:
        row["size"] = _size(record["size"], where)
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


def _size(value: Any, where: str) -> int | None:
    """A file size: a whole number of bytes (text in CSV), or None when unknown."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise _bad_line(where, f"size must be a whole number of bytes; received {_preview(value)}")


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
