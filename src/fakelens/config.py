"""Every default in one place, with its type and why it is what it is.

`None` in a CLI option means "keep the default below", so command-line defaults never clobber
these values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fakelens.errors import InvalidArgumentError

#: Environment variable naming the CIFAKE zip or folder.
DATA_ENV = "FAKELENS_DATA"
#: Environment variable overriding the cache directory for decoded arrays.
CACHE_ENV = "FAKELENS_CACHE"
#: Where the data sits beside a checkout of this repository (this project's shared data).
CHECKOUT_DATA = Path("../shared/data/cifake/cifake.zip")
#: Kaggle handle of CIFAKE, for `fakelens data download`.
KAGGLE_HANDLE = "birdy654/cifake-real-and-ai-generated-synthetic-images"

#: Model input (height, width): CIFAKE's native size.
INPUT_SIZE = (32, 32)
#: Refuse images above this many pixels before decoding them (decompression bombs).
#: 100 MP admits any camera photo and most panoramas.
MAX_PIXELS = 100_000_000
#: Refuse files larger than this before reading them (a zip member can claim any size).
MAX_FILE_BYTES = 256 * 1024 * 1024
#: File name endings treated as images when listing a folder or zip.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


@dataclass(frozen=True)
class TrainConfig:
    """What `fakelens train` does unless told otherwise."""

    model: str = "seed"
    #: The original notebook trained 20 epochs.
    epochs: int = 20
    #: The original notebook used Keras' default batch of 32.
    batch_size: int = 32
    learning_rate: float = 1e-3
    #: Part of `train/` held out for validation (grouped by image hash).
    val_fraction: float = 0.1
    seed: int = 42
    #: Use only this many training images (balanced per class); None = all.
    limit: int | None = None
    runs_dir: Path = Path("runs")
    name: str | None = None

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "learning_rate": self.learning_rate > 0,
            "val_fraction": 0 < self.val_fraction < 1,
            "limit": self.limit is None or self.limit >= 4,
        }
        for name, ok in checks.items():
            if not ok:
                raise InvalidArgumentError(f"{name} is out of range; received {name}={getattr(self, name)!r}")


@dataclass(frozen=True)
class InferenceConfig:
    """Batching for predict, scan and evaluate."""

    #: Model batches of 256 reach full speed on 2 cores; larger gains nothing.
    batch_size: int = 256
    #: Decoding threads; Pillow releases the GIL while decoding.
    workers: int = max(2, os.cpu_count() or 2)
