"""Labelled images that know their source: what a real-world model trains and is judged on.

A data set is a folder or zip in one of two layouts:
- Kaggle's `train|test/REAL|FAKE/...` (CIFAKE, sd-unsplash): one source, named after the data set;
- `<source>/REAL|FAKE/...` (wild): a source per top folder.
A `manifest.csv` beside it with `file` and `source` columns (and optionally `generator`) names
each file's source and generator instead. Evaluation holds whole sources out: an image-level
split of a multi-source set measures memorised sources, not detection.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path, PurePosixPath

from fakelens.data.layout import (
    FOLDER_LABELS,
    SPLITS,
    ImageSource,
    LabelledImage,
    is_image_name,
    kaggle_entries,
)
from fakelens.errors import DatasetLayoutError

MANIFEST = "manifest.csv"


def dataset_name(path: str | os.PathLike[str]) -> str:
    """`sd-unsplash` for `.../sd-unsplash.zip` or `.../sd-unsplash/`."""
    path = Path(path)
    return path.stem if path.suffix.lower() == ".zip" else path.name


def source_entries(source: ImageSource) -> list[LabelledImage]:
    """Every labelled image of `source`, each with its source (and generator when known)."""
    names = source.names()
    if _is_kaggle(names):
        entries = [replace(e, source=dataset_name(source.path)) for e in kaggle_entries(source)]
    else:
        entries = _per_source_folders(source, names)
    manifest = _manifest(source.path)
    if manifest:
        entries = [
            replace(e, source=manifest[e.name][0] or e.source, generator=manifest[e.name][1])
            if e.name in manifest
            else e
            for e in entries
        ]
    return entries


def _is_kaggle(names: list[str]) -> bool:
    return any(
        len(parts) >= 3 and parts[-3] in SPLITS and parts[-2] in FOLDER_LABELS
        for parts in (PurePosixPath(name).parts for name in names)
    )


def _per_source_folders(source: ImageSource, names: list[str]) -> list[LabelledImage]:
    entries = []
    for name in names:
        parts = PurePosixPath(name).parts
        if len(parts) >= 3 and parts[-2] in FOLDER_LABELS and is_image_name(name):
            entries.append(LabelledImage(name, "train", FOLDER_LABELS[parts[-2]], source=parts[-3]))
    if not entries:
        raise DatasetLayoutError(
            f"{source.path}: found no images under train|test/REAL|FAKE/ nor <source>/REAL|FAKE/; "
            "lay a data set out one of these ways"
        )
    return entries


def _manifest(path: Path) -> dict[str, tuple[str, str]]:
    """file -> (source, generator) from a `manifest.csv` beside the data set, if it has one."""
    manifest = path.parent / MANIFEST if path.is_file() else path / MANIFEST
    if not manifest.is_file():
        return {}
    try:
        with open(manifest, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetLayoutError(f"{manifest}: cannot read the manifest ({exc})") from None
    if rows and not {"file", "source"} <= set(rows[0]):
        return {}
    return {row["file"]: (row["source"] or "", row.get("generator") or "") for row in rows}


def source_counts(entries: list[LabelledImage]) -> dict[str, dict[str, int]]:
    """source -> {"ai": n, "real": n}."""
    counts = Counter((e.source, e.label) for e in entries)
    return {
        source: {label: counts[(source, label)] for label in ("ai", "real")}
        for source in sorted({e.source for e in entries})
    }
