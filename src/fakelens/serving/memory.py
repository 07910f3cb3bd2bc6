"""When the server hands memory back (`fakelens.heap`): after large uploads and large decodes.

glibc keeps freed blocks in per-thread arenas. After a burst of multi-megabyte uploads decoded
on many threads, a server would keep about 70-100 MB it no longer uses (measured with 12-MP
JPEGs, 16 at a time), and hundreds of megabytes after a few small files with huge canvases
(GIFs of 10,000 x 10,000 pixels); `malloc_trim` returns it. Where libc has no `malloc_trim`
(musl, macOS) this does nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fakelens.heap import CAN_RELEASE, release_memory

#: Requests that brought at least this many bytes trigger a trim.
TRIM_AFTER_BYTES = 1 << 20
#: At most one trim per this many seconds: a trim walks the whole heap.
TRIM_INTERVAL_S = 1.0


class HeapTrimmer:
    """Calls `malloc_trim(0)` after large requests: at once, or, within the interval since the
    last trim, once the interval is over, so a burst always ends with a trim."""

    def __init__(
        self, interval_s: float = TRIM_INTERVAL_S, release: Callable[[], None] | None = None
    ) -> None:
        #: What a trim calls; None where libc cannot trim.
        self._release = release or (release_memory if CAN_RELEASE else None)
        self._interval_s = interval_s
        self._last = 0.0
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def after_large_request(self) -> None:
        if self._release is None:
            return
        with self._lock:
            wait = self._last + self._interval_s - time.monotonic()
            if wait > 0:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self._trim_now)
                    self._timer.daemon = True
                    self._timer.start()
                return
            self._last = time.monotonic()
        self._release()

    def when_idle(self) -> None:
        """Trim once the interval allows, on a timer's thread (the caller may be the event
        loop): when no upload is being read, what they took is all free."""
        if self._release is None:
            return
        with self._lock:
            if self._timer is None:
                self._timer = threading.Timer(
                    max(0.0, self._last + self._interval_s - time.monotonic()), self._trim_now
                )
                self._timer.daemon = True
                self._timer.start()

    def _trim_now(self) -> None:
        with self._lock:
            self._timer = None
            self._last = time.monotonic()
        self._release()
