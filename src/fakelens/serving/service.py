"""The work behind each endpoint, free of HTTP: decode uploads, score them in shared batches."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np

from fakelens.config import ServeConfig
from fakelens.data.decode import load_image
from fakelens.errors import ImageDecodeError
from fakelens.inference import Detector, Prediction
from fakelens.serving.batcher import MicroBatcher
from fakelens.serving.memory import TRIM_AFTER_BYTES, HeapTrimmer
from fakelens.serving.uploads import Upload

if TYPE_CHECKING:
    from fakelens.explain.heatmaps import Explanation


class ScoringTimeout(Exception):
    """The model did not answer within the request timeout (the server is overloaded)."""


@dataclass
class Service:
    """A loaded detector and the batcher that owns it."""

    detector: Detector
    config: ServeConfig
    batcher: MicroBatcher
    trimmer: HeapTrimmer = field(default_factory=HeapTrimmer)

    @classmethod
    def start(cls, detector: Detector, config: ServeConfig) -> Service:
        batcher = MicroBatcher(
            detector.predict_batch,
            window_s=config.batch_window_ms / 1000,
            max_batch=config.max_batch,
            parallel=detector.parallel_batches,
        )
        return cls(detector, config, batcher)

    def close(self) -> None:
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

    async def predict(self, uploads: list[Upload], *, evidence: bool = False) -> list[Prediction]:
        """One record per upload, in order; an unreadable file gets its reason in `error`.

        With `evidence`, each record also lists what the file's metadata says (beside the
        score, never merged into it).
        """
        prepared = await asyncio.gather(*(anyio.to_thread.run_sync(self.prepare, u) for u in uploads))
        good = [i for i, item in enumerate(prepared) if isinstance(item, np.ndarray)]
        scores = await self._wait(self.batcher.submit(np.stack([prepared[i] for i in good]))) if good else []
        scored = dict(zip(good, self.detector.to_records([uploads[i].filename for i in good], scores)))
        records = [
            scored[i] if i in scored else self.detector.failure(upload.filename, prepared[i])
            for i, upload in enumerate(uploads)
        ]
        if evidence:
            records = await asyncio.gather(
                *(anyio.to_thread.run_sync(r.with_evidence, u.data) for r, u in zip(records, uploads))
            )
        received = sum(len(upload.data) for upload in uploads)
        if received >= TRIM_AFTER_BYTES:
            await anyio.to_thread.run_sync(self.trimmer.after_large_request)
        return list(records)

    async def explain(self, upload: Upload) -> Explained:
        """The record with its evidence, and a heatmap overlay when the image could be read."""
        from fakelens.explain.heatmaps import explanation_png

        prepared = await anyio.to_thread.run_sync(self.prepare, upload)
        if isinstance(prepared, str):
            record = self.detector.failure(upload.filename, prepared)
            return Explained(await anyio.to_thread.run_sync(record.with_evidence, upload.data))
        explanation = await self._explanation(upload)
        overlay = await anyio.to_thread.run_sync(explanation_png, explanation)
        (record,) = self.detector.to_records([upload.filename], np.array([explanation.ai_probability]))
        record = await anyio.to_thread.run_sync(record.with_evidence, upload.data)
        return Explained(record, overlay, explanation.layer, explanation.method)

    async def _explanation(self, upload: Upload) -> Explanation:
        """The model's map of `upload`, by the method `heatmaps.choose_method` picks for it."""
        from fakelens.explain.heatmaps import choose_method

        if choose_method(self.detector) == "gradcam":
            from fakelens.explain import gradcam

            # Gradients run the model outside `predict_batch`: alone, on the model's own thread.
            job = self.batcher.run_exclusive(
                lambda: gradcam.explain(self.detector, upload.data, name=upload.filename)
            )
            return await self._wait(job)
        from fakelens.explain.occlusion import occlude

        # The occluded copies are plain images to score: they share batches with other requests.
        occlusion = await anyio.to_thread.run_sync(
            lambda: occlude(self.detector, upload.data, name=upload.filename)
        )
        return occlusion.explanation(self.detector, await self._wait(self.batcher.submit(occlusion.batch)))

    async def _wait(self, future: Future) -> Any:
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.config.request_timeout_s)
        except asyncio.TimeoutError:
            future.cancel()
            timeout = self.config.request_timeout_s
            raise ScoringTimeout(f"no score within {timeout:g} s; retry later") from None


@dataclass(frozen=True)
class Explained:
    """A record, and when a heatmap could be made: its overlay (PNG bytes), Grad-CAM's layer
    (None for occlusion) and the method ("gradcam" or "occlusion")."""

    record: Prediction
    overlay_png: bytes | None = None
    layer: str | None = None
    method: str | None = None
