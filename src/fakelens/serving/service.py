"""The work behind each endpoint, free of HTTP: decode uploads, score them in shared batches.

Uploads are untrusted: each one is read (decoded, and its metadata read when asked for) on a
bounded pool of threads (`decoding`) within the request's deadline, and whatever goes wrong
with one file becomes that file's `error`, never the request's. Decoding itself holds memory
from the process's budget (`data.bounds.MEMORY`); the heap is trimmed after large decodes and
whenever the pool falls idle (`memory`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np

from fakelens.config import ServeConfig
from fakelens.data.decode import load_image
from fakelens.errors import ImageDecodeError
from fakelens.evidence.attach import with_evidence
from fakelens.evidence.finding import Evidence
from fakelens.inference.detector import Detector
from fakelens.record import Prediction
from fakelens.serving.batcher import MicroBatcher
from fakelens.serving.decoding import LIGHT_FILE_BYTES, Cost, WorkPool, decode_cost
from fakelens.serving.memory import TRIM_AFTER_BYTES, HeapTrimmer
from fakelens.serving.uploads import Upload

if TYPE_CHECKING:
    from fakelens.explain.heatmaps import Explanation

logger = logging.getLogger(__name__)

#: Threads reading uploads, shared by all requests, per lane (see `decoding`): light files
#: (small, quick) and the others. More than the cores, so that a few slow files leave threads to
#: the other requests (the operating system shares the cores).
READ_LANES = {"light": 4, "heavy": 4}
#: Files of one request read at once (two keep two cores busy).
READ_PER_REQUEST = 2
#: Files being read or queued (abandoned ones included) beyond which a request gets 503.
READ_BACKLOG = 64
#: Large decodes (`decoding.Cost.large`) read at once.
LARGE_READS = 2


class ScoringTimeout(Exception):
    """The model did not answer within the request timeout (the server is overloaded)."""


def timed_out(timeout_s: float) -> str:
    """The `error` of a file not read within the request timeout."""
    return (
        f"not decoded within the {timeout_s:g} s request timeout (too slow to decode, or the "
        "server is busy); retry later, or send it alone"
    )


@dataclass(frozen=True)
class Read:
    """What the pool made of one upload: the model's input or why there is none, the file's
    metadata evidence (on a blank record) when asked for, and the image as a heatmap draws it."""

    image: np.ndarray | str
    evidence: Prediction | None = None
    shown: np.ndarray | None = None


@dataclass
class Service:
    """A loaded detector, the batcher that owns it, and the pool that reads uploads."""

    detector: Detector
    config: ServeConfig
    batcher: MicroBatcher
    trimmer: HeapTrimmer = field(default_factory=HeapTrimmer)
    large_reads: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(LARGE_READS))
    readers: WorkPool = field(init=False)

    def __post_init__(self) -> None:
        self.readers = WorkPool(
            READ_LANES,
            per_request=READ_PER_REQUEST,
            max_backlog=READ_BACKLOG,
            on_idle=self.trimmer.when_idle,  # a burst of reads, abandoned ones too, ends with a trim
        )

    @classmethod
    def start(cls, detector: Detector, config: ServeConfig) -> Service:
        batcher = MicroBatcher(
            detector.predict_proba,
            window_s=config.batch_window_ms / 1000,
            max_batch=config.max_batch,
            parallel=detector.parallel_batches,
        )
        return cls(detector, config, batcher)

    def close(self) -> None:
        self.readers.close()
        self.batcher.close()

    def prepare(self, upload: Upload) -> np.ndarray | str:
        """The model-sized image, or why it cannot be read (the pixel limit is checked first)."""
        try:
            return load_image(
                upload.data,
                self.detector.card.input_size,
                name=upload.filename,
                max_pixels=self.config.max_pixels,
                fit=self.detector.card.fit,
            )
        except ImageDecodeError as exc:
            return exc.reason

    def read(
        self,
        upload: Upload,
        deadline: float,
        *,
        light: bool = False,
        cost: Cost | None = None,
        evidence: bool = False,
        shown: bool = False,
    ) -> Read | Cost:
        """Decode `upload` (and draw it for a heatmap with `shown`), and read its evidence with
        `evidence`. On the pool's `light` lane, a file that is not light is left for the heavy
        lane: its `cost` is returned, to be handed back. Any failure is the file's own, and a
        large decode that gets no turn by `deadline` (`time.monotonic`) is answered as timed
        out."""
        cost = cost or decode_cost(upload.data)
        if light and not cost.light:
            return cost
        view = None
        try:
            with self._turn(cost.large, deadline):
                image = self.prepare(upload)
                if shown and isinstance(image, np.ndarray):
                    from fakelens.explain.heatmaps import shown_image

                    view = shown_image(upload.data, upload.filename)
        except TimeoutError:
            image = timed_out(self.config.request_timeout_s)
        except ImageDecodeError as exc:
            image = exc.reason
        except Exception as exc:  # a decoder bug must not cost the other files their answers
            logger.warning("decoding %r failed unexpectedly", upload.filename, exc_info=True)
            image = f"could not be decoded ({type(exc).__name__}: {exc})"
        if cost.large:  # whatever the upload's size: a 37-byte GIF can take a gigabyte to decode
            self.trimmer.after_large_request()
        return Read(image, self._evidence(upload) if evidence else None, view)

    @contextmanager
    def _turn(self, large: bool, deadline: float) -> Iterator[None]:
        """For a large decode, one of the `LARGE_READS` turns (TimeoutError if none comes by
        `deadline`): the decoder's memory budget would make it wait anyway, on a thread that
        the small files of other requests could use, and with no deadline."""
        if not large:
            yield
            return
        if not self.large_reads.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise TimeoutError
        try:
            yield
        finally:
            self.large_reads.release()

    def _evidence(self, upload: Upload) -> Prediction:
        """A blank record carrying the file's evidence; a reader's failure becomes a finding."""
        blank = Prediction(upload.filename, None, None, self.detector.name)
        try:
            return with_evidence(blank, upload.data)
        except Exception as exc:  # the score stands without the evidence
            logger.warning("reading the metadata of %r failed", upload.filename, exc_info=True)
            reason = f"the metadata could not be read ({type(exc).__name__}); the score stands"
            finding = Evidence("metadata", "unreadable", reason, "unknown", "none")
            return replace(blank, evidence=[finding.to_dict()])

    async def read_all(self, uploads: list[Upload], **options: bool) -> list[Read]:
        """`read` for every upload, within the request timeout; a file not read by then is
        answered as timed out. Raises `decoding.Busy` when the pool's backlog is full."""
        self.readers.admit()
        deadline = asyncio.get_running_loop().time() + self.config.request_timeout_s

        async def read_one(rank: int, upload: Upload) -> Read:
            """On the light lane, or on the heavy one when it is not light (a large file goes
            there at once); a file refused unread (over the size limit) keeps its reason."""
            if upload.rejected:
                return Read(upload.rejected)
            cost = None
            if len(upload.data) <= LIGHT_FILE_BYTES:
                read = await self.readers.run(
                    "light", rank, partial(self.read, upload, deadline, light=True, **options)
                )
                if isinstance(read, Read):
                    return read
                cost = read
            return await self.readers.run(
                "heavy", rank, partial(self.read, upload, deadline, cost=cost, **options)
            )

        done = await self.readers.map(read_one, uploads, deadline)
        late = Read(timed_out(self.config.request_timeout_s))
        return [read or late for read in done]

    async def predict(self, uploads: list[Upload], *, evidence: bool = False) -> list[Prediction]:
        """One record per upload, in order; an unreadable file gets its reason in `error`.

        With `evidence`, each record also lists what the file's metadata says (beside the
        score, never merged into it).
        """
        reads = await self.read_all(uploads, evidence=evidence)
        good = [i for i, read in enumerate(reads) if isinstance(read.image, np.ndarray)]
        batch = np.stack([reads[i].image for i in good]) if good else None
        scores = await self._wait(self.batcher.submit(batch)) if good else []
        scored = dict(zip(good, self.detector.to_records([uploads[i].filename for i in good], scores)))
        records = [
            scored[i] if i in scored else self.detector.failure(upload.filename, reads[i].image)
            for i, upload in enumerate(uploads)
        ]
        if evidence:
            records = [_with_evidence(record, read) for record, read in zip(records, reads)]
        if sum(len(upload.data) for upload in uploads) >= TRIM_AFTER_BYTES:
            await anyio.to_thread.run_sync(self.trimmer.after_large_request)
        return records

    async def explain(self, upload: Upload) -> Explained:
        """The record with its evidence, and a heatmap overlay when the image could be read."""
        from fakelens.explain.heatmaps import explanation_png

        (read,) = await self.read_all([upload], evidence=True, shown=True)
        if read.shown is None:
            return Explained(_with_evidence(self.detector.failure(upload.filename, read.image), read))
        explanation = await self._explanation(read)
        overlay = await anyio.to_thread.run_sync(explanation_png, explanation)
        (record,) = self.detector.to_records([upload.filename], np.array([explanation.ai_probability]))
        return Explained(_with_evidence(record, read), overlay, explanation.layer, explanation.method)

    async def _explanation(self, read: Read) -> Explanation:
        """The model's map of the image `read`, by the method `heatmaps.choose_method` picks."""
        from fakelens.explain.heatmaps import choose_method

        if choose_method(self.detector) == "gradcam":
            from fakelens.explain import gradcam

            # Gradients run the model outside `predict_proba`: alone, on the model's own thread.
            job = self.batcher.run_exclusive(
                lambda: gradcam.explain_views(self.detector, read.image, read.shown)
            )
            return await self._wait(job)
        from fakelens.explain.occlusion import occlude_views

        # The occluded copies are plain images to score: they share batches with other requests.
        occlusion = await anyio.to_thread.run_sync(occlude_views, self.detector, read.image, read.shown)
        return occlusion.explanation(self.detector, await self._wait(self.batcher.submit(occlusion.batch)))

    async def _wait(self, future: Future) -> Any:
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.config.request_timeout_s)
        except asyncio.TimeoutError:
            future.cancel()
            timeout = self.config.request_timeout_s
            raise ScoringTimeout(f"no score within {timeout:g} s; retry later") from None


def _with_evidence(record: Prediction, read: Read) -> Prediction:
    """`record` with the evidence read beside it ([] for a file not read in time)."""
    if read.evidence is None:
        return replace(record, evidence=[], declared=None)
    return replace(record, evidence=read.evidence.evidence, declared=read.evidence.declared)


@dataclass(frozen=True)
class Explained:
    """A record, and when a heatmap could be made: its overlay (PNG bytes), Grad-CAM's layer
    (None for occlusion) and the method ("gradcam" or "occlusion")."""

    record: Prediction
    overlay_png: bytes | None = None
    layer: str | None = None
    method: str | None = None
