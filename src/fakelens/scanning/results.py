"""Result files that survive a kill and can be resumed.

Rows are appended to a journal, `<out>.partial`, and flushed after every batch; `commit()`
publishes it as `out` atomically. Opening the same `out` again recovers the journal (or, after
a finished scan, starts one from `out`): complete rows are kept, a torn last record left by a
kill is dropped, and `is_done()` tells which files need no new row. A path scored twice (its
file changed) keeps only its newest row when the file is published.

A kill can cut the journal anywhere, inside a quoted CSV cell too (a file name may hold a line
break): a record the end of the file cuts short is the torn one, and only it is dropped. Cells
are read back whatever their length (`any_cell_size`): a hand-edited row, or the findings of a
file full of metadata, can pass csv's default limit of 131,072 characters.

Paths arrive as scans display them (`data.layout.printable_name`: bytes of a name that are not
UTF-8 as `\\xNN`), so every result file is UTF-8 text.

CSV and JSONL journals are in the output's own format; a Parquet output is journalled as
JSONL and converted at commit in row groups, never as one table in memory.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any

from fakelens.errors import InvalidArgumentError
from fakelens.fsutil import atomic_path
from fakelens.record import COLUMNS, EVIDENCE_FIELDS, arrow_schema

#: Added when evidence is asked for (`record.EVIDENCE_FIELDS`); findings are JSON text in CSV
#: and Parquet.
EVIDENCE_COLUMNS = EVIDENCE_FIELDS
DECLARED_COLUMN, EVIDENCE_COLUMN = EVIDENCE_COLUMNS
FORMATS = (".csv", ".jsonl", ".parquet")
PARQUET_HINT = "Parquet output needs pyarrow: pip install 'fakelens[parquet]'"
_ROW_GROUP = 65_536
#: The longest CSV cell read back: csv's limit is a C long, 32 bits on some platforms.
_MAX_CELL = 2**31 - 1

Row = dict[str, Any]
_cell_lock = threading.Lock()
#: Readers inside `any_cell_size`, and csv's own limit, put back when the last one leaves.
_cell_readers = 0
_cell_default = 0


@contextmanager
def any_cell_size() -> Iterator[None]:
    """Read CSV cells of any length inside this block. csv's limit (131,072 characters) is one
    setting for the whole process, so it is lifted only while fakelens reads a result file, and
    put back when the last such reader is done; the file's own size bounds the memory used."""
    global _cell_readers, _cell_default
    with _cell_lock:
        if _cell_readers == 0:
            _cell_default = csv.field_size_limit(_MAX_CELL)
        _cell_readers += 1
    try:
        yield
    finally:
        with _cell_lock:
            _cell_readers -= 1
            if _cell_readers == 0:
                csv.field_size_limit(_cell_default)


def check_output_path(out: Path) -> None:
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise InvalidArgumentError(f"--out must end in {', '.join(FORMATS)}; received {out}")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise InvalidArgumentError(f"{out}: {PARQUET_HINT}") from None


def resume_key(row: Row) -> tuple[str, str]:
    """What identifies a version of a file: its size and modification time, as text."""
    return ("" if row.get("size") is None else str(row["size"]), row.get("modified") or "")


class ResultWriter:
    """Appends rows to `<out>.partial`; `commit()` publishes `out`. See the module docstring."""

    def __init__(self, out: Path, *, model: str, resume: bool = True, evidence: bool = False) -> None:
        check_output_path(out)
        self.out = out
        self.columns = (*COLUMNS, *EVIDENCE_COLUMNS) if evidence else COLUMNS
        self.partial = out.with_name(out.name + ".partial")
        self.model = model
        self.csv = out.suffix.lower() == ".csv"
        #: path -> (index of its newest row, resume key) for the rows the journal held when
        #: opened; rows written since are not indexed, so memory does not grow as a scan goes.
        self.done: dict[str, tuple[int, tuple[str, str]]] = {}
        #: Paths of `done` written again (their file changed): their old rows are dropped.
        self.superseded: set[str] = set()
        #: path -> error of the paths in `done` whose newest row is a failure.
        self._failed: dict[str, str] = {}
        self.rows = 0
        self.recovered_rows = 0
        out.parent.mkdir(parents=True, exist_ok=True)
        #: The file named in errors about earlier rows: the journal, or `out` it was copied from.
        self._earlier = self.partial
        if not resume:
            self.partial.unlink(missing_ok=True)
        elif not self.partial.exists() and out.exists():
            self._earlier = out
            self._journal_from(out)
        if self.partial.exists():
            try:
                self._recover()
            except InvalidArgumentError:
                if self._earlier == out:
                    self.partial.unlink()
                raise
        self._file = open(self.partial, "a", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file) if self.csv else None
        if self._csv is not None and self._file.tell() == 0:
            self._csv.writerow(self.columns)

    @property
    def recovered(self) -> int:
        return len(self.done)

    def earlier_failures(self) -> list[tuple[str, str]]:
        """(path, error) of the failed rows the journal held when opened that the published file
        keeps: those not written again since."""
        return [(path, error) for path, error in self._failed.items() if path not in self.superseded]

    def is_done(self, path: str, key: tuple[str, str]) -> bool:
        """True when `path` already has a row for this version of the file."""
        known = self.done.get(path)
        return known is not None and known[1] == key

    def write(self, rows: Sequence[Row]) -> None:
        if self._csv is not None:
            self._csv.writerows(map(_csv_cells(self.columns), rows))
        else:
            self._file.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        if self.done:
            self.superseded.update(row["path"] for row in rows if row["path"] in self.done)
        self.rows += len(rows)
        self._file.flush()

    def commit(self) -> None:
        """Publish the journal as `out` (newest row per path), atomically."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        parquet = self.out.suffix.lower() == ".parquet"
        if not parquet and not self.superseded and len(self.done) == self.recovered_rows:
            os.replace(self.partial, self.out)
            return
        kept = (row for index, row in enumerate(self._read()) if self._newest(index, row["path"]))
        if parquet:
            _write_parquet(self.out, kept, self.columns)
        else:
            with atomic_path(self.out) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
                _write_text(handle, kept, self.csv, self.columns)
        self.partial.unlink()

    def _newest(self, index: int, path: str) -> bool:
        """Whether row `index` is its path's newest: rows written since opening always are."""
        if index >= self.recovered_rows:
            return True
        return path not in self.superseded and self.done[path][0] == index

    def close(self) -> None:
        """Close without publishing (after `commit` this does nothing)."""
        self._file.close()

    def _journal_from(self, out: Path) -> None:
        """Start the journal as a copy of a finished result file."""
        if out.suffix.lower() != ".parquet":
            shutil.copyfile(out, self.partial)
            return
        import pyarrow.parquet as pq

        with open(self.partial, "w", encoding="utf-8", newline="") as handle:
            for batch in pq.ParquetFile(out).iter_batches():
                _write_text(handle, batch.to_pylist(), csv_format=False, columns=self.columns)

    def _recover(self) -> None:
        """Index the journal's complete rows and cut off a torn last record."""
        end = 0
        for index, (row, row_end) in enumerate(self._scan()):
            if row.get("model") != self.model:
                raise InvalidArgumentError(
                    f"{self._earlier}: holds results of model {row.get('model')!r}, not {self.model!r}; "
                    "scan with that model, or choose another --out"
                )
            self.done[row["path"]] = (index, resume_key(row))
            if row.get("error"):
                self._failed[row["path"]] = str(row["error"])
            else:
                self._failed.pop(row["path"], None)
            self.rows, end = index + 1, row_end
        self.recovered_rows = self.rows
        if end < self.partial.stat().st_size:
            os.truncate(self.partial, end)

    def _read(self) -> Iterator[Row]:
        return (row for row, _end in self._scan())

    def _scan(self) -> Iterator[tuple[Row, int]]:
        """Complete rows with the byte offset where each ends; refuses files not written here."""
        with open(self.partial, "rb") as handle, any_cell_size():
            lines = _Lines(handle, self._earlier)
            if self.csv:
                parse = _csv_rows(lines, self._earlier, self.columns)
            else:
                parse = _jsonl_rows(lines, self._earlier)
            for row in parse:
                yield row, lines.consumed


class _Lines:
    """Complete lines of a binary file, counting the bytes consumed; stops at a torn last line.

    `ended` turns true once the file has no complete line left: a CSV record handed out after
    that was cut short by the end of the file (inside a quoted cell), and is the torn one.
    """

    def __init__(self, handle: io.BufferedReader, path: Path) -> None:
        self.handle = handle
        self.path = path
        self.consumed = 0
        self.ended = False
        self._pending = 0

    def __iter__(self) -> Iterator[str]:
        for line in self.handle:
            if not line.endswith(b"\n"):
                break
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise _damaged(self.path, self, "a line that is not UTF-8") from None
            self._pending += len(line)
            yield text
        self.ended = True

    def commit(self) -> None:
        """Mark every line handed out so far as part of a complete row."""
        self.consumed += self._pending
        self._pending = 0


def _damaged(path: Path, lines: _Lines, what: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{path}: not a result file written by fakelens ({what} after byte {lines.consumed:,}); "
        "move it away or choose another --out"
    )


def _csv_rows(lines: _Lines, path: Path, columns: tuple[str, ...]) -> Iterator[Row]:
    try:
        yield from _csv_records(lines, path, columns)
    except csv.Error as exc:
        raise _damaged(path, lines, f"CSV it cannot read: {exc}") from None


def _csv_records(lines: _Lines, path: Path, columns: tuple[str, ...]) -> Iterator[Row]:
    reader = csv.reader(iter(lines))
    header = next(reader, None)
    if header is None:
        return
    if tuple(header) != columns:
        differ = set(header) ^ set(columns)
        if differ and differ <= set(EVIDENCE_COLUMNS):
            if (EVIDENCE_COLUMN in header) != (EVIDENCE_COLUMN in columns):
                flag = "--evidence" if EVIDENCE_COLUMN in header else "no --evidence"
                raise InvalidArgumentError(
                    f"{path}: written with {flag}; resume it so, or choose another --out"
                )
            raise InvalidArgumentError(
                f"{path}: written with --evidence by an earlier fakelens, without the "
                f"{DECLARED_COLUMN!r} column; rescan it with --fresh, or choose another --out"
            )
        raise _damaged(path, lines, f"columns {header}")
    lines.commit()
    for record in reader:
        if lines.ended:  # cut short by the end of the file: the torn last record
            return
        if len(record) != len(columns):
            raise _damaged(path, lines, f"a row of {len(record)} fields")
        lines.commit()
        yield dict(zip(columns, record))


def _jsonl_rows(lines: _Lines, path: Path) -> Iterator[Row]:
    for line in lines:
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("path"), str):
            raise _damaged(path, lines, "a line that is not a result record")
        lines.commit()
        yield row


def _text_cell(value: Any) -> Any:
    """A CSV or Parquet cell: lists (evidence) as JSON text, everything else as it is."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list) else value


def _csv_cells(columns: tuple[str, ...]) -> Callable[[Row], Sequence[Any]]:
    """A row's CSV cells in `columns` order. Without the evidence columns no cell is a list, and
    one `itemgetter` call per row does it (a scan writes thousands of rows a second). With
    them, a row that lacks one (a caller that sets only `evidence`) gets an empty cell."""
    if EVIDENCE_COLUMN not in columns:
        return itemgetter(*columns)
    return lambda row: [_text_cell(row.get(column)) for column in columns]


def _write_text(
    handle: io.TextIOBase, rows: Iterable[Row], csv_format: bool, columns: tuple[str, ...]
) -> None:
    if csv_format:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(map(_csv_cells(columns), rows))
    else:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _write_parquet(out: Path, rows: Iterable[Row], columns: tuple[str, ...]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(columns)
    with atomic_path(out) as tmp, pq.ParquetWriter(str(tmp), schema) as writer:
        chunk: list[Row] = []
        for row in rows:
            chunk.append({column: _text_cell(row.get(column)) for column in columns})
            if len(chunk) == _ROW_GROUP:
                writer.write_table(pa.Table.from_pylist(chunk, schema))
                chunk = []
        if chunk:
            writer.write_table(pa.Table.from_pylist(chunk, schema))
