"""Files behind a filesystem URI that pyarrow understands (`s3://bucket/prefix`, `gs://...`,
`hdfs://...`, `file:///...`), as an `ImageSource` like a folder or a zip.

Both scan engines open sources through `layout.open_input`, which hands URIs here, and read
files back by display name through `layout.DisplayNameReader`, which does the same: a Ray
worker needs nothing but the name (the object store must be reachable from every node).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from datetime import timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fakelens.config import MAX_FILE_BYTES
from fakelens.data.layout import ImageSource
from fakelens.errors import DatasetLayoutError, ImageDecodeError


@functools.lru_cache(maxsize=16)
def _filesystem(scheme: str, netloc: str) -> tuple[Any, str]:
    """The pyarrow filesystem of `scheme://netloc`, and the path prefix it gives that location
    (`bucket` for s3://bucket, empty for file:// or hdfs://host)."""
    import pyarrow.fs as pafs

    filesystem, base = pafs.FileSystem.from_uri(f"{scheme}://{netloc}/")
    return filesystem, base.rstrip("/")


class UriSource(ImageSource):
    """Every file under a URI, listed once (object stores list whole prefixes anyway)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")
        self.path = Path(self.uri)
        parts = urlsplit(self.uri)
        try:
            self._filesystem, base = _filesystem(parts.scheme, parts.netloc)
        except (OSError, ValueError) as exc:
            raise DatasetLayoutError(f"{uri}: cannot list this location ({exc})") from None
        self._root = base + parts.path

    @functools.cached_property
    def _files(self) -> dict[str, tuple[str, str]]:
        """Relative name -> (size, modification time), sorted by name."""
        import pyarrow.fs as pafs

        try:
            infos = self._filesystem.get_file_info(pafs.FileSelector(self._root, recursive=True))
        except (OSError, ValueError) as exc:
            raise DatasetLayoutError(f"{self.uri}: cannot list this location ({exc})") from None
        files = {}
        for info in sorted(infos, key=lambda i: i.path):
            if info.type == pafs.FileType.File:
                modified = info.mtime.astimezone(timezone.utc).isoformat() if info.mtime else ""
                files[info.path[len(self._root) :].lstrip("/")] = (str(info.size), modified)
        return files

    def names(self) -> list[str]:
        return list(self._files)

    def iter_names(self, prefix: str = "") -> Iterator[str]:
        return (name for name in self._files if name.startswith(prefix))

    def stat(self, name: str) -> tuple[str, str]:
        return self._files.get(name, ("", ""))

    def read(self, name: str) -> bytes:
        return read_uri(self.display_name(name))

    def display_name(self, name: str) -> str:
        return f"{self.uri}/{name}"

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name, (size, modified) in self._files.items():
            digest.update(f"{name}\0{size}\0{modified}\n".encode())
        return digest.hexdigest()


def read_uri(name: str) -> bytes:
    """The bytes of the file at URI `name`, or `ImageDecodeError` naming it."""
    parts = urlsplit(name)
    try:
        filesystem, base = _filesystem(parts.scheme, parts.netloc)
        with filesystem.open_input_file(base + parts.path) as handle:
            if handle.size() > MAX_FILE_BYTES:
                raise ImageDecodeError(
                    name, f"file is {handle.size():,} bytes, over the {MAX_FILE_BYTES:,}-byte limit"
                )
            return handle.read()
    except (OSError, ValueError) as exc:
        raise ImageDecodeError(name, f"cannot read: {exc}") from None
