"""Group images from concurrent requests into one model call.

One thread owns the model: request handlers only enqueue work and wait on a future, so the
model is never called from two threads at once, and requests that arrive within a few
milliseconds of each other share a batch (much cheaper per image than one call each).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class _Job:
    images: np.ndarray
    future: Future


@dataclass(frozen=True)
class _Task:
    """Other work on the model (a heatmap, say), run alone on the model's thread."""

    call: Callable[[], Any]
    future: Future


class MicroBatcher:
    """`submit(images)` returns a future of `score(images)`, computed in a shared batch."""

    def __init__(self, score: Callable[[np.ndarray], np.ndarray], *, window_s: float, max_batch: int) -> None:
        self._score = score
        self.window_s = window_s
        self.max_batch = max_batch
        self._queue: queue.Queue[_Job | _Task | None] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="fakelens-batcher", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closed

    def submit(self, images: np.ndarray) -> Future:
        if self._closed:
            raise RuntimeError("the batcher is closed")
        future: Future = Future()
        self._queue.put(_Job(images, future))
        return future

    def run_exclusive(self, call: Callable[[], Any]) -> Future:
        """Run `call()` on the model's thread between batches; a future of its result."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        future: Future = Future()
        self._queue.put(_Task(call, future))
        return future

    def close(self) -> None:
        """Finish queued work, then stop the thread."""
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            if isinstance(first, _Task):
                _run_task(first)
                continue
            jobs, count = [first], len(first.images)
            deadline = time.monotonic() + self.window_s
            while count < self.max_batch:
                try:
                    following = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if following is None:
                    stopping = True
                    break
                if isinstance(following, _Task):
                    _run_task(following)
                    continue
                jobs.append(following)
                count += len(following.images)
            self._score_jobs(jobs)

    def _score_jobs(self, jobs: list[_Job]) -> None:
        jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        if not jobs:
            return
        try:
            scores = self._score(np.concatenate([job.images for job in jobs]))
        except Exception as exc:  # handed to every waiting request, which answers 500
            for job in jobs:
                job.future.set_exception(exc)
            return
        offsets = np.cumsum([0] + [len(job.images) for job in jobs])
        for job, start, end in zip(jobs, offsets[:-1], offsets[1:]):
            job.future.set_result(scores[start:end])


def _run_task(task: _Task) -> None:
    if not task.future.set_running_or_notify_cancel():
        return
    try:
        task.future.set_result(task.call())
    except Exception as exc:  # handed to the waiting request
        task.future.set_exception(exc)
