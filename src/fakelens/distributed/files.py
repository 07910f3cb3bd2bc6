"""Where a distributed scan's files are: listed once by the driver, read by name on any node.

A source is a local folder, a zip, `@FILE`/`-` (as for the local scan), or a filesystem URI that
pyarrow understands (`s3://bucket/prefix`, `gs://...`, `hdfs://...`, `file:///...`). Rows carry
the name results show; a worker reads a file from that name alone, so the listing can be sent
anywhere in a cluster (the files must be reachable there: a shared mount, the zip on every
node, or the object store).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from datetime import timezone
from typing import Any
from urllib.parse import urlsplit

from fakelens.config import MAX_FILE_BYTES
from fakelens.data.layout import DisplayNameReader, is_image_name, open_input
from fakelens.errors import DatasetLayoutError, ImageDecodeError
from fakelens.scan import literal_prefix, selector

#: A listed file: `path` (its display name), `size` (None when unknown) and `modified`.
Listed = dict[str, Any]
#: (relative name, display name, size, modification time) as a source lists a file.
_Entry = tuple[str, str, str, str]


def is_uri(source: str) -> bool:
    return "://" in source


def list_images(
    source: str | os.PathLike[str], include: Sequence[str] = (), *, follow_links: bool = False
) -> tuple[list[Listed], list[str], list[tuple[str, str]]]:
    """(image files to score, names skipped for not ending like an image, (name, reason) for
    what was found but cannot be read: folders that could not be listed, links out of a folder,
    lines of a list that cannot be paths), in listing order.

    `include` globs match relative names, and `follow_links` follows links out of a folder, as
    in the local scan.
    """
    selected = selector(include)
    text = os.fspath(source)
    rows: list[Listed] = []
    not_images: list[str] = []
    unlisted: list[tuple[str, str]] = []
    if is_uri(text):
        entries = _uri_listing(text)
    else:
        entries = _local_listing(text, unlisted, literal_prefix(include), follow_links)
    for relative, display, size, modified in entries:
        if selected is not None and not selected(relative):
            continue
        if is_image_name(relative):
            rows.append({"path": display, "size": int(size) if size else None, "modified": modified})
        else:
            not_images.append(display)
    return rows, not_images, unlisted


def _local_listing(
    source: str, unlisted: list[tuple[str, str]], prefix: str, follow_links: bool
) -> Iterator[_Entry]:
    """A folder, zip or list as the local scan sees it (names starting with `prefix`): same
    names, same sizes and times; what it cannot read goes to `unlisted`, as the local scan
    reports it."""
    with open_input(source, follow_links=follow_links) as opened:
        for name in opened.iter_names(prefix):
            yield name, opened.display_name(name), *opened.stat(name)
        unlisted.extend((opened.display_name(folder), reason) for folder, reason in opened.unlisted)


@functools.lru_cache(maxsize=16)
def _filesystem(scheme: str, netloc: str) -> tuple[Any, str]:
    """The pyarrow filesystem of `scheme://netloc`, and the path prefix it gives that location
    (`bucket` for s3://bucket, empty for file:// or hdfs://host)."""
    import pyarrow.fs as pafs

    filesystem, base = pafs.FileSystem.from_uri(f"{scheme}://{netloc}/")
    return filesystem, base.rstrip("/")


def _uri_listing(uri: str) -> Iterator[_Entry]:
    import pyarrow.fs as pafs

    parts = urlsplit(uri)
    location = f"{parts.scheme}://{parts.netloc}"
    try:
        filesystem, base = _filesystem(parts.scheme, parts.netloc)
        root = base + parts.path.rstrip("/")
        infos = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
    except (OSError, ValueError) as exc:
        raise DatasetLayoutError(f"{uri}: cannot list this location ({exc})") from None
    for info in sorted(infos, key=lambda i: i.path):
        if info.type == pafs.FileType.File:
            modified = info.mtime.astimezone(timezone.utc).isoformat() if info.mtime else ""
            relative = info.path[len(root) :].lstrip("/")
            yield relative, location + info.path[len(base) :], str(info.size), modified


class FileReader:
    """Reads files by display name: local files, zip members (`x.zip/a/b.jpg`) or URIs.

    Zips are opened once per reader; use it as a context manager.
    """

    def __init__(self) -> None:
        self._local = DisplayNameReader()

    def __enter__(self) -> FileReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._local.__exit__(*exc_info)

    def read(self, name: str) -> bytes:
        """The file's bytes, or `ImageDecodeError` naming it."""
        if not is_uri(name):
            return self._local.read(name)
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
