"""Atomic file writes (a reader sees the old file or the new one, never half of one), and the
names of run folders."""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# mkstemp creates files readable by the owner alone; published files get the usual mode.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; move it over `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(_FILE_MODE)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(target: str | os.PathLike[str], data: Any) -> None:
    write_text_atomic(target, json.dumps(data, indent=2, sort_keys=True) + "\n")


def run_dirs(parent: Path, name: str) -> Iterator[Path]:
    """The folders a run called `name` may take, in order: `parent/name`, then `name-2`,
    `name-3`... (as Ultralytics numbers its runs)."""
    yield parent / name
    for number in itertools.count(2):
        yield parent / f"{name}-{number}"


def next_run_dir(parent: Path, name: str) -> Path:
    """The first of `run_dirs` that does not exist yet: a new run never writes over an earlier one."""
    return next(folder for folder in run_dirs(parent, name) if not folder.exists())
