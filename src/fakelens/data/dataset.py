"""A labelled data set from a path: list, decode (cached), split without leakage."""

from __future__ import annotations

import os

import numpy as np

from fakelens.config import INPUT_SIZE, InferenceConfig
from fakelens.data.cache import DecodedSet, decode_labelled
from fakelens.data.layout import open_source
from fakelens.data.sources import source_entries
from fakelens.data.split import balanced_subset, group_split, leaked_mask


def load_labelled(
    path: str | os.PathLike[str],
    size: tuple[int, int] = INPUT_SIZE,
    *,
    reencode_quality: int | None = None,
    fit: str = "stretch",
    quiet: bool = False,
) -> DecodedSet:
    """Decode every image of a labelled folder or zip (`data.sources`: the Kaggle layout, or a
    folder per source), from the cache when possible."""
    with open_source(path) as source:
        entries = source_entries(source)
        return decode_labelled(
            source,
            entries,
            size,
            reencode_quality=reencode_quality,
            fit=fit,
            workers=InferenceConfig.workers,
            quiet=quiet,
        )


def train_val(
    data: DecodedSet, val_fraction: float, seed: int, limit: int | None = None
) -> tuple[DecodedSet, DecodedSet]:
    """Group-aware split of `train/`; `limit` keeps a balanced subset of it first."""
    train = data.split("train")
    if limit is not None:
        train = train.select(balanced_subset(train.is_ai, limit, seed))
    train_rows, val_rows = group_split(train.sha256, train.is_ai, val_fraction, seed)
    return train.select(train_rows), train.select(val_rows)


def official_test_and_dedup_mask(data: DecodedSet) -> tuple[DecodedSet, np.ndarray]:
    """The official test split and a mask of its rows whose bytes never occur in `train/`."""
    test = data.split("test")
    return test, ~leaked_mask(test.sha256, data.split("train").sha256)
