"""Scan a folder or zip: score every image, stream one row per file to CSV or JSONL."""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import TextIO

from fakelens.data.layout import ImageSource, is_image_name, open_source
from fakelens.errors import InvalidArgumentError
from fakelens.inference import Detector, Prediction
from fakelens.progress import progress_bar

COLUMNS = ("path", "label", "ai_probability", "model", "error")
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

    def __init__(self, out: Path) -> None:
        check_output_path(out)
        self.out = out
        self.partial = out.with_name(out.name + ".partial")
        out.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = open(self.partial, "w", encoding="utf-8", newline="")
        self._csv = None
        if out.suffix.lower() == ".csv":
            self._csv = csv.DictWriter(self._file, fieldnames=COLUMNS)
            self._csv.writeheader()

    def write(self, records: Iterable[Prediction]) -> None:
        for record in records:
            row = record.to_dict()
            if self._csv is not None:
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
) -> ScanSummary:
    """Score every image file in `source_path` (folder, recursively, or zip) into `out`.

    `include` keeps only relative names matching one of its glob patterns (e.g. "test/*").
    """
    check_output_path(out)
    with open_source(source_path) as source:
        names = [n for n in source.names() if not include or any(fnmatch(n, p) for p in include)]
        images = [name for name in names if is_image_name(name)]
        summary = ScanSummary(
            out=out, not_images=[source.display_name(n) for n in names if not is_image_name(n)]
        )
        display = [source.display_name(name) for name in images]
        loader = _loader(detector, source, images, display)
        writer = ResultWriter(out)
        began = time.perf_counter()
        try:
            with progress_bar(f"Scanning {len(images):,} images", len(images), quiet=quiet) as advance:
                for batch in detector.score_stream(display, loader, workers=workers):
                    writer.write(batch)
                    summary.add(batch)
                    advance(len(batch))
            writer.commit()
        finally:
            writer.close()
    summary.seconds = time.perf_counter() - began
    return summary


def _loader(detector: Detector, source: ImageSource, names: list[str], display: list[str]):
    return lambda i: detector.prepare(source.read(names[i]), display[i])
