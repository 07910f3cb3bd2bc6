"""Scan a folder, zip or list of paths: score every image, stream one row per file to a file.

The listing is consumed as the scan goes and rows are written batch by batch, so memory does not
grow with the number of files. Run again with the same output, a scan skips the files that
already have a row (same path, size and modification time) and appends the rest; see
`scanning.results` for how rows survive a kill.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fakelens.data.layout import ImageSource, PathListSource, ZipSource, open_input, printable_name
from fakelens.data.listing import included_names
from fakelens.data.uris import UriSource
from fakelens.evidence.declared import declaration
from fakelens.evidence.metadata import evidence_dicts
from fakelens.inference.detector import Detector
from fakelens.progress import progress_bar
from fakelens.record import Prediction
from fakelens.scanning.results import (
    COLUMNS,
    DECLARED_COLUMN,
    EVIDENCE_COLUMN,
    FORMATS,
    ResultWriter,
    Row,
    check_output_path,
)

__all__ = ["COLUMNS", "EVIDENCE_COLUMN", "FORMATS", "ScanSummary", "scan"]


@dataclass
class ScanSummary:
    out: Path
    scored: int = 0
    ai: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    #: Failed rows kept from an earlier run (files not changed since): with `failures`, every
    #: failed row of the finished file, which is what the exit code describes.
    earlier_failures: list[tuple[str, str]] = field(default_factory=list)
    #: Files not scanned because their names do not end like an image (.txt, .json, ...).
    not_images: list[str] = field(default_factory=list)
    #: Files skipped because the output already had a row for them (resumed or incremental).
    already_done: int = 0
    seconds: float = 0.0

    def add(self, records: Sequence[Prediction]) -> None:
        for record in records:
            if record.error is None:
                self.scored += 1
                self.ai += record.label == "ai"
            else:
                self.failures.append((record.path, record.error))

    @property
    def images_per_second(self) -> float:
        return (self.scored + len(self.failures)) / self.seconds if self.seconds else 0.0


class _Pending:
    """Files on their way through the detector: what the loader reads, what the row records.

    Records come back in the order names went in, so each row pairs with the oldest stat (and,
    with `evidence`, the metadata findings its loader filed under the same index).
    """

    def __init__(self, detector: Detector, source: ImageSource, *, evidence: bool = False) -> None:
        self.detector = detector
        self.source = source
        self.names: dict[int, tuple[str, str]] = {}
        self.stats: deque[tuple[str, str]] = deque()
        self.count = 0
        self.evidence: dict[int, list[dict]] | None = {} if evidence else None
        self.emitted = 0

    def add(self, name: str, display: str, stat: tuple[str, str]) -> str:
        self.names[self.count] = (name, display)
        self.stats.append(stat)
        self.count += 1
        return display

    def load(self, index: int) -> np.ndarray:
        name, display = self.names.pop(index)
        raw = self.source.read(name)
        if self.evidence is not None:
            self.evidence[index] = evidence_dicts(raw, name=display)
        return self.detector.prepare(raw, display)

    def failure_row(self, name: str, reason: str) -> tuple[Prediction, Row]:
        """A row for something that is no file to score (a folder that could not be listed)."""
        record = self.detector.failure(name, reason)
        row = {**record.to_dict(), "size": None, "modified": ""}
        if self.evidence is not None:
            row[DECLARED_COLUMN], row[EVIDENCE_COLUMN] = None, []
        return record, row

    def rows(self, records: Sequence[Prediction]) -> list[Row]:
        rows = []
        for record in records:
            size, modified = self.stats.popleft()
            row = record.to_dict()
            row["size"], row["modified"] = int(size) if size else None, modified
            if self.evidence is not None:
                # A file that could not be read has no findings to report.
                found = self.evidence.pop(self.emitted, [])
                row[DECLARED_COLUMN], row[EVIDENCE_COLUMN] = declaration(found), found
            self.emitted += 1
            rows.append(row)
        return rows


def scan(
    detector: Detector,
    source_path: str | os.PathLike[str],
    out: Path,
    *,
    include: Sequence[str] = (),
    workers: int | None = None,
    quiet: bool = False,
    resume: bool = True,
    evidence: bool = False,
    follow_links: bool = False,
) -> ScanSummary:
    """Score every image in `source_path` into `out` (.csv, .jsonl or .parquet).

    `source_path`: a folder (recursively), a zip, `@FILE` (paths listed one per line) or `-`
    (paths on standard input). `include` keeps only names matching one of its glob patterns
    (e.g. "test/*"). `resume=False` ignores rows already in `out` and starts it afresh.
    `evidence` adds each file's metadata findings to its row, and what the file declares about
    how it was made (`evidence.declared`). Links out of a scanned folder are reported, not read,
    unless `follow_links`.

    Examples:
    >>> from fakelens import load_detector
    >>> summary = scan(load_detector("seed"), "photos", Path("results.csv"), quiet=True)
    >>> summary.scored, summary.failures, summary.not_images
    (2, [], ['photos/notes.txt'])
    """
    check_output_path(out)
    summary = ScanSummary(out=out)
    with open_input(source_path, follow_links=follow_links) as source:
        writer = ResultWriter(out, model=detector.name, resume=resume, evidence=evidence)
        pending = _Pending(detector, source, evidence=evidence)
        began = time.perf_counter()
        try:
            with progress_bar("Scanning images", known_total(source, include), quiet=quiet) as advance:
                names = _to_score(source, include, writer, pending, summary, advance)
                for batch in detector.score_stream(names, pending.load, workers=workers):
                    writer.write(pending.rows(batch))
                    summary.add(batch)
                    advance(len(batch))
            _report_unlisted(source, writer, pending, summary)
            writer.commit()
            summary.earlier_failures = writer.earlier_failures()
        finally:
            writer.close()
    summary.seconds = time.perf_counter() - began
    return summary


def _to_score(
    source: ImageSource,
    include: Sequence[str],
    writer: ResultWriter,
    pending: _Pending,
    summary: ScanSummary,
    advance: Callable[[int], None],
) -> Iterator[str]:
    """Display names of the image files that need a row, registered in `pending` as they go; the
    progress bar counts the files already done as they are passed over."""
    for name, is_image in included_names(source, include):
        display = printable_name(source.display_name(name))
        if not is_image:
            summary.not_images.append(display)
            continue
        stat = source.stat(name)
        if writer.is_done(display, stat):
            summary.already_done += 1
            advance(1)
            continue
        yield pending.add(name, display, stat)


def known_total(source: ImageSource, include: Sequence[str] = ()) -> int | None:
    """How many image files a scan of `source` lists, where that costs no second pass over a file
    system: a zip's directory and a URI's listing are in memory once read, a list of paths is read
    once more (its text only, no file examined). None for standard input, which can be read once,
    and for a folder: counting its files would walk it twice (on a network file system, a long wait
    before the first score), so its progress counts without an end."""
    if isinstance(source, PathListSource) and source.path != Path("<stdin>"):
        with open_input(f"@{source.path}") as again:
            return _images_in(again, include)
    if isinstance(source, (ZipSource, UriSource)):
        return _images_in(source, include)
    return None


def _images_in(source: ImageSource, include: Sequence[str]) -> int:
    return sum(is_image for _, is_image in included_names(source, include))


def _report_unlisted(
    source: ImageSource, writer: ResultWriter, pending: _Pending, summary: ScanSummary
) -> None:
    """A row, and a listed failure, for each folder that could not be listed."""
    for folder, reason in source.unlisted:
        display = printable_name(source.display_name(folder))
        if writer.is_done(display, ("", "")):
            continue
        record, row = pending.failure_row(display, reason)
        writer.write([row])
        summary.add([record])
