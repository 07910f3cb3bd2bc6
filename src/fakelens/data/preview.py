"""A labelled grid of images drawn from a data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fakelens.data.decode import load_image
from fakelens.data.layout import SPLITS, kaggle_entries, open_source


def preview_grid(
    path: Path,
    out: Path,
    *,
    split: str = "train",
    count: int = 32,
    seed: int = 0,
    size: tuple[int, int] = (32, 32),
) -> Path:
    """Draw `count` images of `split` at random and save them with their labels as a PNG."""
    from fakelens.reporting.plots import plot_image_grid

    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; received {split!r}")
    if count < 1:
        raise ValueError(f"count must be at least 1; received {count}")
    source = open_source(path)
    entries = [e for e in kaggle_entries(source) if e.split == split]
    rng = np.random.default_rng(seed)
    chosen = [
        entries[i] for i in sorted(rng.choice(len(entries), size=min(count, len(entries)), replace=False))
    ]
    images = np.stack(
        [load_image(source.read(e.name), size, name=source.display_name(e.name)) for e in chosen]
    )
    return plot_image_grid(images, [e.label.upper() if e.label == "ai" else e.label for e in chosen], out)
