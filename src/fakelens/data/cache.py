"""Decode a labelled data set once into uint8 arrays cached on disk, keyed by the data's hash.

120,000 CIFAKE JPEGs take about a minute to decode; the cached arrays load in a second and are
memory-mapped, so epochs and later commands never decode again. The cache lives in the user
cache directory (or $FAKELENS_CACHE), never beside the data, which may be read-only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import platformdirs

from fakelens.config import CACHE_ENV
from fakelens.data.decode import load_image
from fakelens.data.layout import ImageSource, LabelledImage
from fakelens.errors import ImageDecodeError
from fakelens.progress import progress_bar

#: Bump when decoding or resizing changes, so stale caches are not reused.
CACHE_FORMAT = 1
#: A half-built cache folder older than this belongs to a build that was killed.
STALE_BUILD_SECONDS = 3600


@dataclass(frozen=True)
class DecodedSet:
    """Decoded images with their labels, splits, names and content hashes, row-aligned."""

    images: np.ndarray  # (N, H, W, 3) uint8, usually a read-only memmap
    is_ai: np.ndarray  # (N,) uint8, 1 = AI-generated
    splits: np.ndarray  # (N,) str, "train" / "test"
    names: np.ndarray  # (N,) str, relative names in the source
    sha256: np.ndarray  # (N,) str, hash of the file bytes
    failures: dict[str, str]  # name -> reason, for files that could not be decoded
    key: str  # cache key: a hash of the files, the chosen entries, the size and the decoder

    def select(self, index: np.ndarray) -> DecodedSet:
        return replace(
            self,
            images=self.images[index],
            is_ai=self.is_ai[index],
            splits=self.splits[index],
            names=self.names[index],
            sha256=self.sha256[index],
        )

    def split(self, name: str) -> DecodedSet:
        return self.select(np.flatnonzero(self.splits == name))


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("fakelens"))


def cache_key(source: ImageSource, entries: Sequence[LabelledImage], size: tuple[int, int]) -> str:
    """Changes when the files, the chosen entries, the size or the decoder change."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}\0{size}\0{source.fingerprint()}\0".encode())
    for entry in entries:
        digest.update(f"{entry.name}\0{entry.split}\0{entry.label}\n".encode())
    return digest.hexdigest()[:24]


def decode_labelled(
    source: ImageSource,
    entries: Sequence[LabelledImage],
    size: tuple[int, int],
    *,
    workers: int = 2,
    quiet: bool = False,
) -> DecodedSet:
    """Decode `entries` into a DecodedSet, cached under the source's fingerprint."""
    key = cache_key(source, entries, size)
    directory = cache_root() / key
    if not (directory / "index.json").exists():
        message = f"Decoding {len(entries):,} images into the cache {directory}"
        with progress_bar(message, len(entries), quiet=quiet) as advance:
            _build(directory, source, entries, size, workers, advance)
    return _load(directory, key)


def _build(directory, source, entries, size, workers, progress) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    for stale in directory.parent.glob(f".{directory.name}.*"):  # left by a killed build
        if time.time() - stale.stat().st_mtime > STALE_BUILD_SECONDS:
            shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        images = np.lib.format.open_memmap(
            staging / "images.npy", mode="w+", dtype=np.uint8, shape=(len(entries), *size, 3)
        )
        kept, hashes, failures = [], [], {}
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(_safe_decode, [(source, e, size) for e in entries])
            for entry, (array, digest, error) in zip(entries, results):
                if error is None:
                    images[len(kept)] = array
                    kept.append(entry)
                    hashes.append(digest)
                else:
                    failures[entry.name] = error
                progress(1)
        images.flush()
        del images
        index = {
            "names": [e.name for e in kept],
            "splits": [e.split for e in kept],
            "is_ai": [int(e.label == "ai") for e in kept],
            "sha256": hashes,
            "failures": failures,
            "count": len(kept),
        }
        (staging / "index.json").write_text(json.dumps(index), encoding="utf-8")
        try:
            os.replace(staging, directory)
        except OSError:  # another process finished the same cache first
            if not (directory / "index.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _safe_decode(job: tuple[ImageSource, LabelledImage, tuple[int, int]]):
    """(array, sha256, None) for a good file, (None, None, reason) for a bad one."""
    source, entry, size = job
    try:
        raw = source.read(entry.name)
        array = load_image(raw, size, name=source.display_name(entry.name))
        return array, hashlib.sha256(raw).hexdigest(), None
    except ImageDecodeError as exc:
        return None, None, exc.reason


def _load(directory: Path, key: str) -> DecodedSet:
    index = json.loads((directory / "index.json").read_text(encoding="utf-8"))
    count = index["count"]
    images = np.load(directory / "images.npy", mmap_mode="r")[:count]
    return DecodedSet(
        images=images,
        is_ai=np.asarray(index["is_ai"], dtype=np.uint8),
        splits=np.asarray(index["splits"]),
        names=np.asarray(index["names"]),
        sha256=np.asarray(index["sha256"]),
        failures=index["failures"],
        key=key,
    )
