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
from fakelens.data.decode import load_image, reencode_jpeg
from fakelens.data.layout import ImageSource, LabelledImage
from fakelens.errors import ImageDecodeError
from fakelens.progress import progress_bar

#: Bump when decoding or resizing changes, so stale caches are not reused.
CACHE_FORMAT = 3  # 3: sources, generators and the fit; 2: large JPEGs decoded at >= 2x the input size
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
    sources: np.ndarray  # (N,) str, where each image comes from (`data.sources`)
    generators: np.ndarray  # (N,) str, the generator of an AI image when the data names it
    failures: dict[str, str]  # name -> reason, for files that could not be decoded
    key: str  # the data's identity: a hash of the files and the chosen entries (see data_hash)

    def select(self, index: np.ndarray) -> DecodedSet:
        return replace(
            self,
            images=self.images[index],
            is_ai=self.is_ai[index],
            splits=self.splits[index],
            names=self.names[index],
            sha256=self.sha256[index],
            sources=self.sources[index],
            generators=self.generators[index],
        )

    def split(self, name: str) -> DecodedSet:
        return self.select(np.flatnonzero(self.splits == name))


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("fakelens"))


def data_hash(source: ImageSource, entries: Sequence[LabelledImage]) -> str:
    """The data's identity: a hash of the files' listing and the chosen entries."""
    digest = hashlib.sha256(f"{source.fingerprint()}\0".encode())
    for entry in entries:
        digest.update(f"{entry.name}\0{entry.split}\0{entry.label}\n".encode())
    return digest.hexdigest()[:24]


def cache_key(
    identity: str, size: tuple[int, int], reencode_quality: int | None = None, fit: str = "stretch"
) -> str:
    """Changes when the data, the size or the decoding change."""
    text = f"{CACHE_FORMAT}\0{size}\0{reencode_quality}\0{fit}\0{identity}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def decode_labelled(
    source: ImageSource,
    entries: Sequence[LabelledImage],
    size: tuple[int, int],
    *,
    reencode_quality: int | None = None,
    fit: str = "stretch",
    workers: int = 2,
    quiet: bool = False,
) -> DecodedSet:
    """Decode `entries` into a DecodedSet, cached under the source's fingerprint.

    `reencode_quality` re-encodes every image as JPEG at that quality (at its own size, before
    resizing), so that no container or format difference between classes survives. `fit` is
    how images reach `size` (`data.decode.FITS`).
    """
    identity = data_hash(source, entries)
    directory = cache_root() / cache_key(identity, size, reencode_quality, fit)
    if not (directory / "index.json").exists():
        message = f"Decoding {len(entries):,} images into the cache {directory}"
        with progress_bar(message, len(entries), quiet=quiet) as advance:
            _build(directory, source, entries, (size, reencode_quality, fit), workers, advance)
    return _load(directory, identity)


def _build(directory, source, entries, preparation, workers, progress) -> None:
    size = preparation[0]
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
            results = pool.map(_safe_decode, [(source, e, *preparation) for e in entries])
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
            "sources": [e.source for e in kept],
            "generators": [e.generator for e in kept],
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


def _safe_decode(job: tuple[ImageSource, LabelledImage, tuple[int, int], int | None, str]):
    """(array, sha256 of the file, None) for a good file, (None, None, reason) for a bad one."""
    source, entry, size, reencode_quality, fit = job
    name = source.display_name(entry.name)
    try:
        raw = source.read(entry.name)
        pixels = raw if reencode_quality is None else reencode_jpeg(raw, reencode_quality, name=name)
        array = load_image(pixels, size, name=name, fit=fit)
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
        sources=np.asarray(index["sources"]),
        generators=np.asarray(index["generators"]),
        failures=index["failures"],
        key=key,
    )
