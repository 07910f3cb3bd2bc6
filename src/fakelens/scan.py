"""Scan a folder or zip: score every image, stream one row per file to CSV or JSONL."""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatch
from pathlib import Path
from typing import TextIO

from fakelens.data.layout import ImageSource, is_image_name, open_source
from fakelens.errors import InvalidArgumentError
from fakelens.explain.metadata import evidence_dicts
from fakelens.inference import Detector, Prediction
from fakelens.progress import progress_bar

COLUMNS = ("path", "label", "ai_probability", "model", "error")
#: Added when evidence is asked for; in CSV it holds the JSON list of findings.
EVIDENCE_COLUMN = "evidence"
FORMATS = (".csv", ".jsonl")


@dataclass
class ScanSummary:
    out: Path
    scored: int = 0
    ai: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    #: Files not scanned because their names do not end like an image (.txt, .json, ...).
    not_images: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, records: Iterable[Prediction]) -> None:
        for record in records:
            if record.error is None:
                self.scored += 1
                self.ai += record.label == "ai"
            else:
                self.failures.append((record.path, record.error))

    @property
    def images_per_second(self) -> float:
        return (self.scored + len(self.failures)) / self.seconds if self.seconds else 0.0


def check_output_path(out: Path) -> None:
    if out.suffix.lower() not in FORMATS:
        raise InvalidArgumentError(f"--out must end in {' or '.join(FORMATS)}; received {out}")


class ResultWriter:
    """Writes result rows to `<out>.partial`; `commit()` moves it to `out` when complete.

    An interrupted scan leaves the rows it wrote in `<out>.partial`, never a truncated `out`.
    """

    def __init__(self, out: Path, *, evidence: bool = False) -> None:
        check_output_path(out)
        self.out = out
        self.partial = out.with_name(out.name + ".partial")
        out.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = open(self.partial, "w", encoding="utf-8", newline="")
        self._csv = None
        if out.suffix.lower() == ".csv":
            columns = (*COLUMNS, EVIDENCE_COLUMN) if evidence else COLUMNS
            self._csv = csv.DictWriter(self._file, fieldnames=columns)
            self._csv.writeheader()

    def write(self, records: Iterable[Prediction]) -> None:
        for record in records:
            row = record.to_dict()
            if self._csv is not None:
                if EVIDENCE_COLUMN in row:
                    row[EVIDENCE_COLUMN] = json.dumps(row[EVIDENCE_COLUMN], ensure_ascii=False)
                self._csv.writerow(row)
            else:
                self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.partial, self.out)

    def close(self) -> None:
        """Close without publishing (after `commit` this does nothing)."""
        self._file.close()


def scan(
    detector: Detector,
    source_path: Path,
    out: Path,
    *,
    include: Sequence[str] = (),
    workers: int | None = None,
    quiet: bool = False,
    evidence: bool = False,
) -> ScanSummary:
    """Score every image file in `source_path` (folder, recursively, or zip) into `out`.

    `include` keeps only relative names matching one of its glob patterns (e.g. "test/*");
    `evidence` adds each file's metadata findings to its record.
    """
    check_output_path(out)
    with open_source(source_path) as source:
        names = [n for n in source.names() if not include or any(fnmatch(n, p) for p in include)]
        images = [name for name in names if is_image_name(name)]
        summary = ScanSummary(
            out=out, not_images=[source.display_name(n) for n in names if not is_image_name(n)]
        )
        display = [source.display_name(name) for name in images]
        found: dict[str, list] | None = {} if evidence else None
        loader = _loader(detector, source, images, display, found)
        writer = ResultWriter(out, evidence=evidence)
        began = time.perf_counter()
        try:
            with progress_bar(f"Scanning {len(images):,} images", len(images), quiet=quiet) as advance:
                for batch in detector.score_stream(display, loader, workers=workers):
                    if found is not None:
                        batch = [replace(r, evidence=found.pop(r.path, [])) for r in batch]
                    writer.write(batch)
                    summary.add(batch)
                    advance(len(batch))
            writer.commit()
        finally:
            writer.close()
    summary.seconds = time.perf_counter() - began
    return summary


def _loader(
    detector: Detector,
    source: ImageSource,
    names: list[str],
    display: list[str],
    evidence: dict[str, list] | None = None,
):
    """Prepares input i; with `evidence`, also files its metadata findings there by name."""

    def load(i: int):
        raw = source.read(names[i])
        if evidence is not None:
            evidence[display[i]] = evidence_dicts(raw, name=display[i])
        return detector.prepare(raw, display[i])

    return load
