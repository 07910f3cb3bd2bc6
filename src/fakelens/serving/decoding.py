"""Run the work on untrusted uploads (decoding, reading metadata) off the event loop, bounded.

Python cannot stop a thread, and a file within every limit of the decoder can still keep it
busy for seconds (a 4-megapixel JPEG of 490 refinement scans: 3 s). So the damage is bounded
instead of interrupted:

- Two lanes of threads. A file whose header promises a quick read (`Cost.light`: a small file,
  a small canvas, few scans) is read on the light lane; any other on the heavy lane. Slow
  files then delay only other heavy ones, never a request of small images.
- Each request reads at most `per_request` of its files at once, and schedules no more after
  its deadline: the files left are answered as timed out. Within a lane, every request's first
  file goes before any request's second one.
- Work still running at the deadline is abandoned, not awaited. It keeps its place in the
  backlog until it ends, and a request arriving while the backlog is full is refused at once
  (`Busy`, answered 503), so slow files cannot pile up without end.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import queue
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TypeVar

import simplejpeg
from PIL import Image

from fakelens.data.bounds import check_structure
from fakelens.data.decode import FORMATS

Item = TypeVar("Item")
Result = TypeVar("Result")

#: The light lane takes files up to this size (their evidence is read quickly too)...
LIGHT_FILE_BYTES = 1 << 20
#: ...of at most this many pixels...
LIGHT_PIXELS = 1_000_000
#: ...or JPEGs of scans of at most this many pixels in all (a progressive 4-MP JPEG has 10).
LIGHT_SCAN_PIXELS = 40_000_000
#: Images of this many pixels or more (progressive ones, for JPEG) are large: at 4 or more
#: bytes a pixel, they hold memory from the decoder's budget (`data.bounds.MEMORY`), where they
#: may wait for room.
LARGE_PIXELS = 8_000_000


class Busy(Exception):
    """Too many files are being decoded (some perhaps abandoned by timed-out requests)."""


@dataclass(frozen=True)
class Cost:
    """What reading a file will take, judged from its header: whether it holds memory from the
    decoder's budget (`large`), and whether it is quick whatever it holds (`light`)."""

    large: bool
    light: bool


def decode_cost(raw: bytes) -> Cost:
    """The cost of reading `raw`, judged from its header in a millisecond or two, however hostile
    the file. A file the decoder refuses at once is light."""
    if raw.startswith(b"\xff\xd8"):
        return _jpeg_cost(raw)
    try:
        check_structure(raw, "upload")  # so that Pillow reads the header quickly
        with Image.open(io.BytesIO(raw), formats=FORMATS) as image:
            pixels = image.width * image.height
    except Exception:  # the decoder reports the file's failure, with its reason
        return Cost(large=False, light=True)
    return Cost(large=pixels >= LARGE_PIXELS, light=len(raw) <= LIGHT_FILE_BYTES and pixels <= LIGHT_PIXELS)


def _jpeg_cost(raw: bytes) -> Cost:
    """A JPEG is decoded at a reduced scale, but every scan passes over the whole image, and a
    progressive one keeps all its coefficients (2 to 6 bytes a pixel) until the last scan."""
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(raw)  # libjpeg: C, however many markers
    except ValueError:
        return Cost(large=False, light=True)
    pixels = width * height
    progressive = raw.find(b"\xff\xc2", 0, raw.find(b"\xff\xda")) >= 0  # SOF2 before the first scan
    small = len(raw) <= LIGHT_FILE_BYTES
    # Counting scans reads the whole file: only for a small one (entropy-coded data holds no marker).
    light = small and pixels * raw.count(b"\xff\xda") <= LIGHT_SCAN_PIXELS
    return Cost(large=progressive and pixels >= LARGE_PIXELS, light=light)


class WorkPool:
    """Fixed lanes of threads shared by all requests, with one bounded backlog."""

    def __init__(
        self,
        lanes: dict[str, int],
        *,
        per_request: int,
        max_backlog: int,
        on_idle: Callable[[], None] = lambda: None,
    ) -> None:
        self.per_request = per_request
        self.max_backlog = max_backlog
        #: Called whenever the last work in the backlog ends (also work abandoned long before).
        self.on_idle = on_idle
        self._lanes = lanes
        #: Per lane: (rank: the file's place in its request, arrival, future, [call]); None stops.
        self._queues: dict[str, queue.PriorityQueue] = {lane: queue.PriorityQueue() for lane in lanes}
        self._arrival = itertools.count()
        self._backlog = 0  # submitted and not finished, abandoned work included
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, args=(self._queues[lane],), name=f"fakelens-{lane}-{i}")
            for lane, count in lanes.items()
            for i in range(count)
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def admit(self) -> None:
        """Raise `Busy` when the backlog is full: a new request would only wait and time out."""
        if self._backlog >= self.max_backlog:
            raise Busy(
                f"the server is busy decoding {self._backlog} files (the most it queues is "
                f"{self.max_backlog}); retry in a few seconds"
            )

    async def map(
        self, read: Callable[[int, Item], Awaitable[Result]], items: Sequence[Item], deadline: float
    ) -> list[Result | None]:
        """`read(rank, item)` for each item (awaiting `run`s), at most `per_request` at once, in
        order; None for the items not done by `deadline` (the event loop's clock). `read`
        answers its own failures: an exception here is a bug."""
        results: list[Result | None] = [None] * len(items)
        slots = asyncio.Semaphore(self.per_request)

        async def one(rank: int, item: Item) -> None:
            async with slots:
                results[rank] = await read(rank, item)

        tasks = [asyncio.create_task(one(rank, item)) for rank, item in enumerate(items)]
        remaining = deadline - asyncio.get_running_loop().time()
        done, pending = await asyncio.wait(tasks, timeout=max(remaining, 0.0))
        for task in pending:  # queued work is dropped; running work finishes unwatched
            task.cancel()
        for task in done:
            task.result()
        return results

    async def run(self, lane: str, rank: int, call: Callable[[], Result]) -> Result:
        """`call()` on a thread of `lane`, after the work of lower `rank` queued there."""
        future: Future = Future()
        # Dropped when the future is done or cancelled: a cancelled job waits in the queue until
        # a thread is free, and should not hold its upload's bytes meanwhile.
        job = [call]
        with self._lock:
            self._backlog += 1
        future.add_done_callback(lambda _: self._finished(job))
        self._queues[lane].put((rank, next(self._arrival), future, job))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Stop the threads once their current work is done; queued work is dropped."""
        for lane, count in self._lanes.items():
            for _ in range(count):
                self._queues[lane].put((-1, -1, None, None))

    def _finished(self, job: list[Callable[[], Result]]) -> None:
        job.clear()
        with self._lock:
            self._backlog -= 1
            idle = self._backlog == 0
        if idle:
            self.on_idle()

    @staticmethod
    def _work(work: queue.PriorityQueue) -> None:
        while True:
            _, _, future, job = work.get()
            if future is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job[0]())
            except BaseException as exc:  # handed to the waiting request (an answer, not a crash)
                future.set_exception(exc)
