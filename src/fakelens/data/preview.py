"""A labelled grid of images drawn from a data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fakelens.config import INPUT_SIZE
from fakelens.data.decode import load_image
from fakelens.data.layout import SPLITS, kaggle_entries, open_source
from fakelens.errors import InvalidArgumentError


def preview_grid(
    path: Path,
    out: Path,
    *,
    split: str = "train",
    count: int = 32,
    seed: int = 0,
    size: tuple[int, int] = INPUT_SIZE,
) -> Path:
    """Draw `count` images of `split` at random and save them with their labels as a PNG."""
    from fakelens.plots import plot_image_grid

    if split not in SPLITS:
        raise InvalidArgumentError(f"split must be one of {', '.join(SPLITS)}; received {split!r}")
    if count < 1:
        raise InvalidArgumentError(f"count must be at least 1; received {count}")
    with open_source(path) as source:
        entries = [e for e in kaggle_entries(source) if e.split == split]
        picks = np.random.default_rng(seed).choice(len(entries), size=min(count, len(entries)), replace=False)
        chosen = [entries[i] for i in sorted(picks)]
        images = np.stack(
            [load_image(source.read(e.name), size, name=source.display_name(e.name)) for e in chosen]
        )
    return plot_image_grid(images, [e.label for e in chosen], out)
