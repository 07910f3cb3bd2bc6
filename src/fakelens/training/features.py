"""Backbone features of labelled images, cached by encoder and by the exact pixels it saw.

The encoder pass is the whole cost of training a probe (tens of milliseconds per image); the
head then fits in seconds. Every feature vector is stored under the SHA-256 of the prepared
pixels that went into the encoder, in a folder named after the encoder's file hash: a changed
encoder, decoder or view finds nothing and computes afresh, and an unchanged one is never run
twice, across data sets, runs and a kill (shards are written as the work goes).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fakelens.config import InferenceConfig
from fakelens.data.cache import cache_root
from fakelens.data.layout import ImageSource, LabelledImage
from fakelens.data.views import judging_view, training_view
from fakelens.errors import ImageDecodeError
from fakelens.fsutil import atomic_path
from fakelens.models.backbones import Backbone, BackboneInfo
from fakelens.progress import progress_bar

#: Bump when what a cached vector means changes beyond the pixels and the encoder file.
FEATURES_FORMAT = 1
#: New vectors written to disk every this many.
SHARD_SIZE = 512


class FeatureCache:
    """Feature vectors by pixel hash for one backbone, in `.npz` shards under the user cache."""

    def __init__(self, info: BackboneInfo, root: Path | None = None) -> None:
        self.folder = (
            root or cache_root() / "features"
        ) / f"{info.name}-{info.sha256[:16]}-{FEATURES_FORMAT}"
        self._lock = threading.Lock()
        self._rows: dict[bytes, np.ndarray] = {}
        self._pending: dict[bytes, np.ndarray] = {}
        for shard in sorted(self.folder.glob("*.npz")):
            with np.load(shard) as data:
                self._rows.update(zip(map(bytes, data["keys"]), data["features"]))

    @staticmethod
    def key(pixels: np.ndarray) -> bytes:
        return hashlib.sha256(np.ascontiguousarray(pixels).tobytes() + str(pixels.shape).encode()).digest()

    def get(self, key: bytes) -> np.ndarray | None:
        with self._lock:
            return self._rows.get(key)

    def put(self, key: bytes, vector: np.ndarray) -> None:
        with self._lock:
            self._rows[key] = vector
            self._pending[key] = vector
            full = len(self._pending) >= SHARD_SIZE
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        keys = np.frombuffer(b"".join(pending), np.uint8).reshape(-1, 32)
        digest = hashlib.sha256(keys.tobytes()).hexdigest()[:16]
        with atomic_path(self.folder / f"{digest}.npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, keys=keys, features=np.stack(list(pending.values())).astype(np.float32))


@dataclass(frozen=True)
class EmbeddedSet:
    """Features of labelled images, row-aligned; `features[:, 0]` is the judging view and
    `features[:, 1:]` the random training views."""

    entries: list[LabelledImage]
    features: np.ndarray  # (N, 1 + views, D) float32
    failures: dict[str, str]

    @property
    def is_ai(self) -> np.ndarray:
        return np.array([e.label == "ai" for e in self.entries], dtype=np.uint8)

    @property
    def sources(self) -> np.ndarray:
        return np.array([e.source for e in self.entries])

    @property
    def generators(self) -> np.ndarray:
        return np.array([e.generator for e in self.entries])


def embed_entries(
    source: ImageSource,
    entries: Sequence[LabelledImage],
    backbone: Backbone,
    *,
    views: int,
    seed: int,
    cache: FeatureCache | None = None,
    quiet: bool = False,
) -> EmbeddedSet:
    """The judging view and `views` training views of every entry through `backbone`, from
    `cache` where it has them; files that cannot be decoded are reported in `failures`."""
    cache = cache or FeatureCache(backbone.info)
    size = backbone.info.input_size

    def one(entry: LabelledImage) -> np.ndarray | str:
        name = source.display_name(entry.name)
        try:
            raw = source.read(entry.name)
            makers: list[Callable[[], np.ndarray]] = [lambda: judging_view(raw, size, name)]
            makers += [lambda v=v: training_view(raw, size, name, seed, v) for v in range(1, views + 1)]
            return np.stack([_cached(make(), backbone, cache) for make in makers])
        except ImageDecodeError as exc:
            return exc.reason

    kept, vectors, failures = [], [], {}
    with (
        ThreadPoolExecutor(max_workers=InferenceConfig.parallel_batches) as pool,
        progress_bar(f"embedding ({backbone.info.name})", len(entries), quiet=quiet) as advance,
    ):
        try:
            for entry, result in zip(entries, pool.map(one, entries)):
                advance(1)
                if isinstance(result, str):
                    failures[source.display_name(entry.name)] = result
                else:
                    kept.append(entry)
                    vectors.append(result)
        finally:
            cache.flush()
    shape = (0, 1 + views, backbone.info.features)
    return EmbeddedSet(kept, np.stack(vectors) if vectors else np.zeros(shape, np.float32), failures)


def _cached(pixels: np.ndarray, backbone: Backbone, cache: FeatureCache) -> np.ndarray:
    key = cache.key(pixels)
    vector = cache.get(key)
    if vector is None:
        vector = backbone.embed(pixels[None])[0]
        cache.put(key, vector)
    return vector
