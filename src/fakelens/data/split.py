"""Leakage-free splits: byte-identical images always land on the same side."""

from __future__ import annotations

import numpy as np

from fakelens.errors import InvalidArgumentError


def group_split(
    sha256: np.ndarray, is_ai: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into (train, val), stratified by label, grouped by content hash.

    Groups are ordered by hash and shuffled with `seed`, so the split depends only on the
    files' contents and the seed, not on listing order. Each label receives
    `round(val_fraction * count)` validation images, give or take one group.
    """
    if not 0.0 < val_fraction < 1.0:
        raise InvalidArgumentError(f"val_fraction must be strictly between 0 and 1; received {val_fraction}")
    rng = np.random.default_rng(seed)
    val_rows: list[np.ndarray] = []
    for label in (0, 1):
        rows = np.flatnonzero(is_ai == label)
        if rows.size == 0:
            continue
        groups, inverse = np.unique(sha256[rows], return_inverse=True)
        order = rng.permutation(groups.size)
        sizes = np.bincount(inverse, minlength=groups.size)[order]
        target = round(val_fraction * rows.size)
        chosen = order[: int(np.searchsorted(np.cumsum(sizes), target)) + 1]
        val_rows.append(rows[np.isin(inverse, chosen)])
    chosen_hashes = sha256[np.concatenate(val_rows)] if val_rows else sha256[:0]
    # Select by hash over all rows, so a hash present under both labels (label noise) still
    # stays on one side.
    in_val = np.isin(sha256, chosen_hashes)
    if in_val.all() or not in_val.any():
        raise InvalidArgumentError(
            f"cannot split {len(sha256)} images in {np.unique(sha256).size} distinct files into "
            f"non-empty train and validation sets with val_fraction={val_fraction}; add more images"
        )
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)


def leaked_mask(test_sha256: np.ndarray, train_sha256: np.ndarray) -> np.ndarray:
    """True for test rows whose exact bytes also occur in the training data."""
    return np.isin(test_sha256, train_sha256)


def balanced_subset(is_ai: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Sorted row indices of at most `limit` rows, half per label where possible."""
    rng = np.random.default_rng(seed)
    per_label = limit // 2
    chosen = []
    for label in (0, 1):
        rows = np.flatnonzero(is_ai == label)
        chosen.append(rng.choice(rows, size=min(per_label, rows.size), replace=False))
    return np.sort(np.concatenate(chosen))
