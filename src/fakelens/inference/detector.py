"""`Detector`: a model plus its card, from image paths, bytes or arrays to result records."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from fakelens.config import InferenceConfig
from fakelens.data.decode import BYTES_TYPES, FITS, ImageInput, load_image
from fakelens.data.layout import printable_name
from fakelens.errors import ImageDecodeError, InvalidArgumentError, ModelLoadError
from fakelens.models.card import ModelCard
from fakelens.models.limits import MAX_BATCH_PIXELS
from fakelens.models.precision import resolve_precision, with_precision
from fakelens.record import Prediction
from fakelens.weights import DEFAULT_MODEL, shipped_model_path

Input = ImageInput | np.ndarray
#: How a model file is run: Keras (TensorFlow), or onnxruntime alone (`fakelens export`).
BACKENDS = {"keras": ".keras", "onnx": ".onnx"}
#: A probe model (frozen backbone + head, `models.probe`): runs on onnxruntime whatever the backend.
PROBE_SUFFIX = ".json"


class Detector:
    """Scores images: P(AI) per image, calibrated and thresholded by the model's card.

    `model` is a Keras model, or a `runtime.OnnxModel`: anything with `predict_on_batch`.
    `parallel_batches` model calls may run at once (from different threads); more than one only
    pays when each call runs on one thread, as `load` arranges. Batches hold at most
    `MAX_BATCH_PIXELS`: a card with a large input gets smaller batches, not more memory.
    """

    def __init__(
        self, model: Any, card: ModelCard, *, batch_size: int | None = None, parallel_batches: int = 1
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be at least 1; received {batch_size}")
        if parallel_batches < 1:
            raise InvalidArgumentError(f"parallel_batches must be at least 1; received {parallel_batches}")
        self.model = model
        self.card = card
        height, width = card.input_size
        self.batch_size = min(
            batch_size or InferenceConfig.batch_size, max(1, MAX_BATCH_PIXELS // (height * width))
        )
        self.parallel_batches = parallel_batches

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        trust: bool = False,
        batch_size: int | None = None,
        precision: str = "auto",
    ) -> Detector:
        """Load a `.keras` file (TensorFlow) or an exported `.onnx` file (onnxruntime only).

        `precision` ("auto", "fp32" or "bf16", see `models.precision`) is the compute precision of
        a Keras model; ONNX graphs run in the precision they were exported with.
        """
        parallel = InferenceConfig.parallel_batches
        if precision == "bf16" and Path(path).suffix != BACKENDS["keras"]:
            raise InvalidArgumentError(
                f"{path}: precision bf16 applies to .keras models (--backend keras); this graph runs "
                "in the precision it was exported with"
            )
        resolved = resolve_precision(precision)
        if Path(path).suffix == BACKENDS["onnx"]:
            from fakelens.models.runtime import load_onnx

            model, card = load_onnx(path)
        elif Path(path).suffix == PROBE_SUFFIX:
            from fakelens.models.probe import load_probe

            model, card = load_probe(path)
            batch_size = batch_size or InferenceConfig.probe_batch_size
        else:
            from fakelens.models.saving import load_model, read_card

            read_card(path)  # a hostile file is refused before TensorFlow loads (seconds, 0.7 GB)
            try:
                one_thread = _one_thread_per_op()
            except ModuleNotFoundError as exc:
                raise ModelLoadError(
                    f"{path}: .keras models need TensorFlow ({exc.name} is not installed): "
                    "pip install 'fakelens[tf]', or use an exported .onnx model (--backend onnx)"
                ) from None
            if not one_thread:
                parallel = 1
            model, card = load_model(path, trust=trust, compile=False)
            model = with_precision(model, resolved)
        return cls(model, card, batch_size=batch_size, parallel_batches=parallel)

    @property
    def name(self) -> str:
        return self.card.name

    def prepare(self, item: Input, name: str | None = None) -> np.ndarray:
        """Decode (if needed) and resize one input to the model's input size."""
        if isinstance(item, np.ndarray):
            if item.ndim != 3 or item.shape[2] != 3 or item.dtype != np.uint8:
                raise ImageDecodeError(
                    name or "<array>",
                    f"expected an (H, W, 3) uint8 RGB array; received shape {item.shape}, dtype {item.dtype}",
                )
            return FITS[self.card.fit](item, self.card.input_size)
        return load_image(item, self.card.input_size, name=name, fit=self.card.fit)

    def predict_proba(self, images: np.ndarray | Iterable[Input]) -> np.ndarray:
        """P(AI) per image, calibrated: one column, unlike scikit-learn's two (P(real) is 1 - it).

        `images`: a batch of prepared (N, H, W, 3) uint8 images at the model's input size (the
        fast path scans use), or paths, file bytes or arrays of any size, which are prepared
        first; an input that cannot be read raises `ImageDecodeError` naming it (`predict`
        gives such inputs a record with `error` instead).
        """
        if not (isinstance(images, np.ndarray) and images.ndim == 4):
            prepared = [self.prepare(item, _describe(item, i)) for i, item in enumerate(images)]
            images = np.stack(prepared) if prepared else np.zeros(0)
        return self.score_prepared(images) if len(images) else np.zeros(0)

    def score_prepared(self, images: np.ndarray) -> np.ndarray:
        """P(AI) for a non-empty batch of prepared images: what a subclass changes."""
        chunks = [images[start : start + self.batch_size] for start in range(0, len(images), self.batch_size)]
        if len(chunks) == 1 or self.parallel_batches == 1:
            raw = [self._raw_scores(chunk) for chunk in chunks]
        else:
            with ThreadPoolExecutor(max_workers=min(self.parallel_batches, len(chunks))) as pool:
                raw = list(pool.map(self._raw_scores, chunks))
        return self.card.ai_probability(np.concatenate(raw))

    def _raw_scores(self, chunk: np.ndarray) -> np.ndarray:
        """The model's outputs for one chunk, zero-padded to a power-of-two batch.

        Keras traces a new graph for every batch size it meets (tens of milliseconds each); a
        server or a scan's last batch would meet many. Padding limits them to a handful, and
        rows are independent at inference, so the padding never changes a score.
        """
        count = len(chunk)
        size = min(self.batch_size, 1 << (count - 1).bit_length())
        if size > count and getattr(self.model, "pad_batches", True):
            chunk = np.concatenate([chunk, np.zeros((size - count, *chunk.shape[1:]), chunk.dtype)])
        return np.asarray(self.model.predict_on_batch(chunk))[:count]

    def warm_up(self) -> None:
        """Trace every padded batch size now, so the first requests do not pay for it."""
        height, width = self.card.input_size
        if not getattr(self.model, "pad_batches", True):
            self.predict_proba(np.zeros((1, height, width, 3), np.uint8))
            return
        for size in sorted({min(self.batch_size, 1 << k) for k in range(self.batch_size.bit_length() + 1)}):
            self.predict_proba(np.zeros((size, height, width, 3), np.uint8))

    def to_records(self, names: Sequence[str], probabilities: np.ndarray) -> list[Prediction]:
        """Result records for scores computed by `predict_proba`."""
        labels = self.card.labels(probabilities)
        return [
            Prediction(name, str(label), float(p), self.name)
            for name, label, p in zip(names, labels, probabilities)
        ]

    def failure(self, name: str, reason: str) -> Prediction:
        return Prediction(name, None, None, self.name, reason)

    def predict(self, inputs: Iterable[Input] | Input, *, workers: int | None = None) -> list[Prediction]:
        """Score paths, file bytes or uint8 arrays; a bad input gets a record with `error` set.

        Examples:
        >>> detector = load_detector("seed")
        >>> [(r.path, r.label, r.error) for r in detector.predict(["photo.jpg", "notes.txt"])]
        [('photo.jpg', 'ai', None), ('notes.txt', None, 'not a recognised image format')]
        >>> detector.predict_proba(["photo.jpg"]).round(3)
        array([0.984])
        """
        if isinstance(inputs, (str, os.PathLike, np.ndarray, *BYTES_TYPES)):
            inputs = [inputs]
        items = list(inputs)
        names = [_describe(item, i) for i, item in enumerate(items)]
        stream = self.score_stream(names, lambda i: self.prepare(items[i], names[i]), workers=workers)
        return [record for batch in stream for record in batch]

    def score_stream(
        self,
        names: Iterable[str],
        load: Callable[[int], np.ndarray],
        *,
        workers: int | None = None,
        batches_ahead: int = 2,
    ) -> Iterator[list[Prediction]]:
        """Yield records batch by batch; `load(i)` prepares the i-th input or raises ImageDecodeError.

        `names` is consumed lazily, a batch at a time. The stages overlap: the model scores
        `parallel_batches` batches at once on threads that do nothing else (decoded batches
        queue up for them, so they never wait for the caller), while the caller lists and
        decodes later batches and turns batch k into records (and writes them); `batches_ahead`
        batches wait beyond those the model threads hold. Reading, decoding and inference all
        release the GIL. A lone batch (one image's latency) is scored on the caller's thread,
        with no hand-off.

        Decoding threads take runs of a batch, not single images (one task per image costs
        more in locking than a small image costs to decode), and stack what they decoded. With
        `workers` left to None, images found cheap to decode and quick to read
        (`InferenceConfig`) are decoded on the caller's thread, a batch at a time: for them a
        thread of their own spends more CPU taking turns on the GIL than it saves, CPU the
        model needs. Slow reads (network file systems) stay spread over `workers` threads.
        """
        if workers is not None and workers < 1:
            raise InvalidArgumentError(f"workers must be at least 1; received {workers}")
        threads = workers or InferenceConfig.workers
        cost = _DecodeCost(enough=self.batch_size) if workers is None else None
        indexed = enumerate(names)
        batches = iter(lambda: list(islice(indexed, self.batch_size)), [])
        with (
            ThreadPoolExecutor(max_workers=threads) as pool,
            ThreadPoolExecutor(max_workers=self.parallel_batches) as model,
        ):

            def decode(batch: list[tuple[int, str]]) -> tuple[list[str], list[Future]]:
                indices = [i for i, _ in batch]
                # A lone image, or cheap ones: handing them to a thread costs more than it saves.
                if len(indices) == 1 or (cost is not None and cost.cheap()):
                    runs = [_done(_prepare_run(load, indices, cost))]
                else:
                    step = -(-len(indices) // threads)
                    chunks = [indices[start : start + step] for start in range(0, len(indices), step)]
                    runs = [pool.submit(_prepare_run, load, chunk, cost) for chunk in chunks]
                return [name for _, name in batch], runs

            scoring: deque[tuple[list[str], Future]] = deque()
            current = next(batches, None)
            while current is not None:
                names_now, runs = decode(current)
                current = next(batches, None)  # listed while this batch decodes
                if current is None and not scoring:
                    yield self._records(names_now, *self._scores(runs))
                    return
                scoring.append((names_now, model.submit(self._scores, runs)))
                if len(scoring) > batches_ahead + self.parallel_batches - 1:
                    done_names, done = scoring.popleft()
                    yield self._records(done_names, *done.result())
            while scoring:
                done_names, done = scoring.popleft()
                yield self._records(done_names, *done.result())

    def _scores(self, runs: list[Future]) -> tuple[np.ndarray, list[str | None]]:
        """P(AI) of the images decoded by `runs`, and each input's failure reason (None: scored)."""
        decoded = [run.result() for run in runs]
        stacks = [images for images, _ in decoded if len(images)]
        reasons = [reason for _, run_reasons in decoded for reason in run_reasons]
        return self.predict_proba(np.concatenate(stacks) if stacks else np.zeros(0)), reasons

    def _records(self, names: list[str], scores: np.ndarray, reasons: list[str | None]) -> list[Prediction]:
        scored = iter(
            self.to_records([name for name, reason in zip(names, reasons) if reason is None], scores)
        )
        return [
            next(scored) if reason is None else self.failure(name, reason)
            for name, reason in zip(names, reasons)
        ]


class _DecodeCost:
    """What preparing recent images cost, per image: CPU time (`time.thread_time`) and wall
    time (CPU plus waiting for the disk or the GIL). A run of `enough` images replaces the
    estimate, a shorter one moves it part way: the first images pay for warming up."""

    def __init__(self, enough: int) -> None:
        self.enough = enough
        self._lock = threading.Lock()
        self._per_image: tuple[float, float] | None = None  # (CPU, wall) seconds

    def add(self, cpu: float, wall: float, images: int) -> None:
        latest = (cpu / images, wall / images)
        with self._lock:
            if self._per_image is None:
                self._per_image = latest
            else:
                weight = min(1.0, images / self.enough)
                self._per_image = tuple(
                    old + (new - old) * weight for old, new in zip(self._per_image, latest)
                )

    def cheap(self) -> bool:
        """Whether recent images were cheap to decode and quick to read
        (`InferenceConfig.parallel_decode_above_s`, `parallel_read_above_s`)."""
        with self._lock:
            if self._per_image is None:
                return False
            cpu, wall = self._per_image
        return cpu < InferenceConfig.parallel_decode_above_s and wall < InferenceConfig.parallel_read_above_s


def _done(result: tuple[np.ndarray, list[str | None]]) -> Future:
    future: Future = Future()
    future.set_result(result)
    return future


def _prepare_run(
    load: Callable[[int], np.ndarray], indices: list[int], cost: _DecodeCost | None = None
) -> tuple[np.ndarray, list[str | None]]:
    """The images of `indices` that could be prepared, stacked, and each index's failure reason
    (None for those prepared); what they cost goes to `cost`."""
    began, began_cpu = time.perf_counter(), time.thread_time()
    images: list[np.ndarray] = []
    reasons: list[str | None] = []
    for index in indices:
        try:
            images.append(load(index))
            reasons.append(None)
        except ImageDecodeError as exc:
            reasons.append(exc.reason)
    if cost is not None:
        cost.add(time.thread_time() - began_cpu, time.perf_counter() - began, len(indices))
    return (np.stack(images) if images else np.zeros(0)), reasons


def _one_thread_per_op() -> bool:
    """Have TensorFlow run each operation on one thread, unless it already runs (its threads
    are fixed then) or the user chose a number (`tf.config.threading`, TF_NUM_INTRAOP_THREADS);
    whether it does."""
    import tensorflow as tf

    threading_config = tf.config.threading
    chosen = os.environ.get("TF_NUM_INTRAOP_THREADS")
    if chosen is not None:
        return chosen.strip() == "1"
    if threading_config.get_intra_op_parallelism_threads() == 0:
        try:
            threading_config.set_intra_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow has started (trained or scored in this process)
            return False
    return threading_config.get_intra_op_parallelism_threads() == 1


def _describe(item: Input, index: int) -> str:
    """The record's name for an input: a path as result files write it (`printable_name`)."""
    if isinstance(item, (str, os.PathLike)):
        return printable_name(str(item))
    return f"<{'array' if isinstance(item, np.ndarray) else 'bytes'} {index}>"


def load_detector(
    path_or_name: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    trust: bool = False,
    batch_size: int | None = None,
    backend: str | None = None,
    precision: str = "auto",
) -> Detector:
    """Load a detector from a `.keras`, `.onnx` or probe `.json` file saved by fakelens, or a
    shipped model's name; with no argument, the shipped default (`auto`, see `routing`).

    `backend` ("keras" or "onnx") picks the shipped file of a name; for a path it must agree with
    the file's ending. None: a path's ending decides; a name loads its ONNX export when it has
    one (no TensorFlow: a second to start instead of several), else Keras. Probe models run on
    onnxruntime whatever the backend. `precision` is a Keras model's (see `Detector.load`).

    Examples:
    >>> detector = load_detector()
    >>> detector.name
    'auto'
    >>> load_detector("seed").card.input_size
    (32, 32)
    """

    if backend is not None and backend not in BACKENDS:
        raise InvalidArgumentError(f"backend must be one of {', '.join(BACKENDS)}; received {backend!r}")
    from fakelens.inference.routing import ROUTED_NAME, load_routed

    if path_or_name == ROUTED_NAME and not Path(path_or_name).exists():
        return load_routed(backend=backend, batch_size=batch_size, precision=precision)
    path = Path(path_or_name)
    if not path.exists():
        suffixes = [BACKENDS[backend]] if backend else [BACKENDS["onnx"], BACKENDS["keras"]]
        shipped = next(filter(None, (shipped_model_path(str(path_or_name), s) for s in suffixes)), None)
        if shipped is None:
            raise ModelLoadError(f"{path_or_name}: no such model file or shipped model name")
        path = shipped
    if backend is not None and path.suffix not in (BACKENDS[backend], PROBE_SUFFIX):
        hint = f"; export it first: fakelens export {path} --format onnx" if backend == "onnx" else ""
        raise InvalidArgumentError(
            f"backend {backend!r} runs {BACKENDS[backend]} files; received {path}{hint}"
        )
    return Detector.load(path, trust=trust, batch_size=batch_size, precision=precision)
