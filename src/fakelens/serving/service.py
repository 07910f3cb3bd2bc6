"""The work behind each endpoint, free of HTTP: decode uploads, score them in shared batches."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import anyio.to_thread
import numpy as np

from fakelens.config import ServeConfig
from fakelens.data.decode import load_image
from fakelens.errors import ImageDecodeError
from fakelens.inference import Detector, Prediction
from fakelens.serving.batcher import MicroBatcher
from fakelens.serving.uploads import Upload


class ScoringTimeout(Exception):
    """The model did not answer within the request timeout (the server is overloaded)."""


@dataclass
class Service:
    """A loaded detector and the batcher that owns it."""

    detector: Detector
    config: ServeConfig
    batcher: MicroBatcher

    @classmethod
    def start(cls, detector: Detector, config: ServeConfig) -> Service:
        batcher = MicroBatcher(
            detector.predict_batch, window_s=config.batch_window_ms / 1000, max_batch=config.max_batch
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
            )
        except ImageDecodeError as exc:
            return exc.reason

    async def predict(self, uploads: list[Upload]) -> list[Prediction]:
        """One record per upload, in order; an unreadable file gets its reason in `error`."""
        prepared = await asyncio.gather(*(anyio.to_thread.run_sync(self.prepare, u) for u in uploads))
        good = [i for i, item in enumerate(prepared) if isinstance(item, np.ndarray)]
        scores = await self._score(np.stack([prepared[i] for i in good])) if good else np.zeros(0)
        scored = dict(zip(good, self.detector.to_records([uploads[i].filename for i in good], scores)))
        return [
            scored[i] if i in scored else self.detector.failure(upload.filename, prepared[i])
            for i, upload in enumerate(uploads)
        ]

    async def _score(self, images: np.ndarray) -> np.ndarray:
        future = self.batcher.submit(images)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.config.request_timeout_s)
        except asyncio.TimeoutError:
            future.cancel()
            raise ScoringTimeout(
                f"no score within {self.config.request_timeout_s:g} s; retry later"
            ) from None
