"""`fakelens data info`: what a Kaggle-layout data set holds, including leaked duplicates."""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fakelens.config import InferenceConfig
from fakelens.data.decode import input_bytes, open_image
from fakelens.data.layout import ImageSource, LabelledImage, kaggle_entries, open_source
from fakelens.errors import ImageDecodeError
from fakelens.progress import progress_bar


def _header(source: ImageSource, entry: LabelledImage) -> tuple[str, str, str]:
    """(sha256, "WxH", format) from the file's bytes and image header; no pixel decoding."""
    label, raw = input_bytes(source.read(entry.name), source.display_name(entry.name))
    with open_image(raw, label) as image:
        return hashlib.sha256(raw).hexdigest(), f"{image.width}x{image.height}", image.format or "?"


def dataset_info(path: str | os.PathLike[str], *, quiet: bool = False) -> dict[str, Any]:
    """Counts per split and label, sizes, formats, duplicate groups, unreadable files."""
    with open_source(path) as source:
        return _summarise(source, quiet)


def _summarise(source: ImageSource, quiet: bool) -> dict[str, Any]:
    entries = kaggle_entries(source)
    counts: Counter[tuple[str, str]] = Counter()
    sizes: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    by_hash: dict[str, list[LabelledImage]] = defaultdict(list)
    unreadable: dict[str, str] = {}

    def inspect(entry: LabelledImage):
        try:
            return entry, _header(source, entry), None
        except ImageDecodeError as exc:
            return entry, None, exc.reason

    with (
        progress_bar(f"Reading {len(entries):,} files", len(entries), quiet=quiet) as advance,
        ThreadPoolExecutor(InferenceConfig.workers) as pool,
    ):
        for entry, header, error in pool.map(inspect, entries):
            counts[(entry.split, entry.label)] += 1
            if header is None:
                unreadable[source.display_name(entry.name)] = error
            else:
                digest, size, fmt = header
                by_hash[digest].append(entry)
                sizes[size] += 1
                formats[fmt] += 1
            advance(1)

    groups = [group for group in by_hash.values() if len(group) > 1]
    spanning = [g for g in groups if {e.split for e in g} >= {"train", "test"}]
    return {
        "path": str(source.path),
        "counts": {
            split: {label: counts[(split, label)] for label in ("real", "ai")} for split in ("train", "test")
        },
        "total": len(entries),
        "sizes": dict(sizes.most_common(5)),
        "formats": dict(formats.most_common()),
        "duplicate_groups": len(groups),
        "duplicate_files": sum(len(g) for g in groups),
        "groups_across_train_and_test": len(spanning),
        "test_files_also_in_train": sum(e.split == "test" for g in spanning for e in g),
        "unreadable": unreadable,
    }
