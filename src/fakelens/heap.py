"""Hand freed memory back to the operating system (glibc), for decoders and the server alike.

glibc keeps freed blocks in per-thread arenas: after a large decode, or a burst of uploads read
on many threads, a process would keep hundreds of megabytes it no longer uses. Where libc has no
`malloc_trim` / `mallopt` (musl, macOS, Windows) these functions do nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

#: Blocks of this size or more come straight from the operating system and go back to it when
#: freed (glibc's M_MMAP_THRESHOLD, here fixed; mallopt's parameter -3).
MMAP_THRESHOLD_BYTES = 1 << 20
_M_MMAP_THRESHOLD = -3


def _libc(name: str) -> Callable[..., int] | None:
    """The C library's function `name`, among the symbols this process has already loaded (no
    library search, which runs `ldconfig` at every start); None where it has none (musl, macOS),
    or where a process's own symbols cannot be looked up (Windows)."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError, TypeError):
        return None


_MALLOC_TRIM = _libc("malloc_trim")
#: Whether `release_memory` can do anything here.
CAN_RELEASE = _MALLOC_TRIM is not None


def release_memory() -> None:
    """Return the heap's free memory to the operating system. Walks the heap (milliseconds)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def map_large_blocks() -> None:
    """Have glibc serve every block of `MMAP_THRESHOLD_BYTES` or more (uploads, decoded images)
    from its own mapping, returned when freed. By default the threshold rises to the largest
    block freed so far (up to 32 MB), and the free memory each thread's arena may keep at its
    top with it (to 64 MB), where `malloc_trim` does not reach: after a few dozen uploads of
    megabytes, arenas kept 30 MB each, 170 MB in all, that no trim returned."""
    mallopt = _libc("mallopt")
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
