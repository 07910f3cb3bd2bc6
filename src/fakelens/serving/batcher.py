"""Group images from concurrent requests into one model call.

One thread gathers the work: request handlers only enqueue it and wait on a future, and
requests that arrive within a few milliseconds of each other share a batch (much cheaper per
image than one call each). Up to `parallel` batches are scored at once (a model whose calls
each run on one thread, see `Detector.parallel_batches`); other work on the model, such as a
heatmap, runs alone, once the batches being scored are done.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
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

    def __init__(
        self, score: Callable[[np.ndarray], np.ndarray], *, window_s: float, max_batch: int, parallel: int = 1
    ) -> None:
        self._score = score
        self.window_s = window_s
        self.max_batch = max_batch
        self.parallel = parallel
        #: Scoring threads when batches run in parallel; one batch at a time runs on the gatherer.
        self._pool = (
            ThreadPoolExecutor(parallel, thread_name_prefix="fakelens-score") if parallel > 1 else None
        )
        self._scoring: deque[Future] = deque()
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
        """Run `call()` on the gathering thread, alone (no batch is being scored meanwhile); a
        future of its result."""
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
        try:
            self._gather()
        finally:
            self._wait_for_batches(0)
            if self._pool is not None:
                self._pool.shutdown()

    def _gather(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            if isinstance(first, _Task):
                self._run_alone(first)
                continue
            # While every scoring thread is busy, requests queue up to join this batch.
            self._wait_for_batches(self.parallel - 1)
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
                    self._run_alone(following)
                    continue
                jobs.append(following)
                count += len(following.images)
            if self._pool is None:
                self._score_jobs(jobs)
            else:
                self._scoring.append(self._pool.submit(self._score_jobs, jobs))

    def _wait_for_batches(self, left: int) -> None:
        """Wait until at most `left` batches are being scored."""
        while len(self._scoring) > left:
            self._scoring.popleft().result()

    def _run_alone(self, task: _Task) -> None:
        self._wait_for_batches(0)
        _run_task(task)

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
