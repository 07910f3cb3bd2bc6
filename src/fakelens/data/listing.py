"""Which files of a source a scan judges: names under `--include` globs, named like images.

Both scan engines list through here: the local scan one name at a time, the Ray engine's driver
all at once (`list_images`), so the two judge exactly the same files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from fnmatch import translate
from typing import Any

from fakelens.data.layout import ImageSource, is_image_name, open_input

#: A listed file: `path` (its display name), `size` (None when unknown) and `modified`.
Listed = dict[str, Any]


def selector(include: Sequence[str]) -> Callable[[str], object] | None:
    """A test for names matching one of the `include` globs; None when there are none."""
    return re.compile("|".join(f"(?:{translate(p)})" for p in include)).match if include else None


def literal_prefix(include: Sequence[str]) -> str:
    """What every name matching one of the `include` globs starts with: the text before the
    first wildcard, common to all of them ("" when there are none)."""
    literals = [re.split(r"[*?[]", pattern, maxsplit=1)[0] for pattern in include]
    return os.path.commonprefix(literals)  # noqa: RUF071 (characters, not path components, are meant)


def included_names(source: ImageSource, include: Sequence[str]) -> Iterator[tuple[str, bool]]:
    """(name, named like an image) for each name of `source` matching `include`, in listing
    order, one at a time."""
    selected = selector(include)
    for name in source.iter_names(literal_prefix(include)):
        if selected is None or selected(name):
            yield name, is_image_name(name)


def list_images(
    source: str | os.PathLike[str], include: Sequence[str] = (), *, follow_links: bool = False
) -> tuple[list[Listed], list[str], list[tuple[str, str]]]:
    """(image files to score, names skipped for not ending like an image, (name, reason) for
    what was found but cannot be read), in listing order, for a source `open_input` opens.
    Rows carry the name results show, which `DisplayNameReader` reads back anywhere."""
    rows: list[Listed] = []
    not_images: list[str] = []
    with open_input(source, follow_links=follow_links) as opened:
        for name, is_image in included_names(opened, include):
            display = opened.display_name(name)
            if is_image:
                size, modified = opened.stat(name)
                rows.append({"path": display, "size": int(size) if size else None, "modified": modified})
            else:
                not_images.append(display)
        unlisted = [(opened.display_name(folder), reason) for folder, reason in opened.unlisted]
    return rows, not_images, unlisted
