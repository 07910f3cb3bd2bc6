"""Every default in one place, with its type and why it is what it is.

`None` in a CLI option means "keep the default below", so command-line defaults never clobber
these values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from fakelens.errors import InvalidArgumentError

#: Environment variable naming the CIFAKE zip or folder.
DATA_ENV = "FAKELENS_DATA"
#: Environment variable overriding the cache directory for decoded arrays.
CACHE_ENV = "FAKELENS_CACHE"
#: Where the data sits beside a checkout of this repository (this project's shared data).
CHECKOUT_DATA = Path("../shared/data/cifake/cifake.zip")
#: Kaggle handle of CIFAKE, for `fakelens data download`.
KAGGLE_HANDLE = "birdy654/cifake-real-and-ai-generated-synthetic-images"

#: Model input (height, width): CIFAKE's native size.
INPUT_SIZE = (32, 32)
#: The routed default (`routing`) judges images no larger than this a side with the CIFAKE model.
SMALL_SIDE = 64
#: Refuse images above this many pixels before decoding them (decompression bombs).
#: 100 MP admits any camera photo and most panoramas.
MAX_PIXELS = 100_000_000
#: Refuse images whose decoding would take more memory than this, estimated from the header
#: (canvas x bytes per pixel of the decoder and the RGB conversion); decodes running at once
#: share it. With the CLIP encoder's ~300 MB, a process stays under 1.5 GB.
MAX_DECODE_BYTES = 1 << 30
#: Refuse files larger than this before reading them (a zip member can claim any size).
MAX_FILE_BYTES = 256 * 1024 * 1024
#: Metadata evidence (`evidence.metadata`) keeps at most this many findings per file, then one
#: saying that the rest were not read: genuine files carry a dozen, a hostile XMP packet hundreds
#: of thousands (44 MiB of JSON for one file). 50 findings of `MAX_EVIDENCE_VALUE_CHARS` stay far
#: below the 131,072 characters a CSV cell may hold.
MAX_EVIDENCE_FINDINGS = 50
#: The longest value kept per finding: generator parameters and workflows run to megabytes.
MAX_EVIDENCE_VALUE_CHARS = 400
#: The most bytes of any one metadata text that evidence reading parses (an XMP packet, a PNG
#: text chunk once inflated, an EXIF value). Genuine workflows and packets stay well below;
#: without a bound, parsing costs time and memory in proportion to the file, or to what a
#: compressed text chunk inflates to.
MAX_EVIDENCE_TEXT_BYTES = 2 * 1024 * 1024
#: Compute precisions of Keras models (`models.precision`): auto picks from the CPU's flags.
PRECISIONS = ("auto", "fp32", "bf16")
#: File name endings treated as images when listing a folder or zip. HEIC/HEIF files are listed
#: so that a scan reports them as unsupported rather than passing over them.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".avif", ".heic", ".heif"}
)


@dataclass(frozen=True)
class Interval:
    """Numbers allowed for an option: each bound given is inclusive (`ge`, `le`) or strict (`gt`,
    `lt`), as in annotated-types."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def allows(self, value: Any) -> bool:
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def __str__(self) -> str:
        bounds = [(">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt)]
        return " and ".join(f"{sign} {bound:g}" for sign, bound in bounds if bound is not None)


@dataclass(frozen=True)
class Choice:
    """The values allowed for an option, all of them."""

    values: tuple[str, ...]

    def allows(self, value: Any) -> bool:
        return value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(self.values)


def option(default: Any, allowed: Interval | Choice) -> Any:
    """A config field with its default and the values it allows, declared together; `None` is
    always allowed (it means "keep the default"). `check_config` enforces them."""
    return field(default=default, metadata={"allowed": allowed})


def check_config(config: Any) -> None:
    """Raise `InvalidArgumentError` naming the first field of the dataclass `config` outside
    what it allows, what it received and what is allowed."""
    for spec in fields(config):
        allowed, value = spec.metadata.get("allowed"), getattr(config, spec.name)
        if allowed is not None and value is not None and not allowed.allows(value):
            raise InvalidArgumentError(f"{spec.name} must be {allowed}; received {spec.name}={value!r}")


@dataclass(frozen=True)
class Recipe:
    """How an architecture trains unless told otherwise; each model registers its own.

    These defaults are the original notebook's: Adam at 1e-3, batch 32, 20 epochs, no
    augmentation.
    """

    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    #: Decoupled weight decay (AdamW) when > 0, plain Adam otherwise.
    weight_decay: float = 0.0
    #: "constant", or "cosine": one warm-up epoch, then cosine decay to zero.
    schedule: str = "constant"
    #: Flips, shifts and web degradations (JPEG, rescaling, blur, noise) on training batches.
    augment: bool = False


#: The original notebook's training: what `seed` uses.
NOTEBOOK_RECIPE = Recipe()


@dataclass(frozen=True)
class TrainConfig:
    """What `fakelens train` does; `None` fields take the model's recipe."""

    model: str = "seed"
    epochs: int | None = option(None, Interval(ge=1))
    batch_size: int | None = option(None, Interval(ge=1))
    learning_rate: float | None = option(None, Interval(gt=0))
    weight_decay: float | None = option(None, Interval(ge=0))
    schedule: str | None = option(None, Choice(("constant", "cosine")))
    augment: bool | None = None
    #: Part of `train/` held out for validation (grouped by image hash).
    val_fraction: float = option(0.1, Interval(gt=0, lt=1))
    seed: int = 42
    #: Use only this many training images (balanced per class); None = all. Four at the least:
    #: one per class in each of train and validation.
    limit: int | None = option(None, Interval(ge=4))
    runs_dir: Path = Path("runs/train")
    name: str | None = None
    #: Operating point stored with the model: a fixed threshold on P(AI), or the lowest one
    #: flagging at most this share of the validation's real photos. Neither: 0.5.
    threshold: float | None = option(None, Interval(ge=0, le=1))
    max_false_positive_rate: float | None = option(None, Interval(ge=0, lt=1))
    #: "local" (one process), or "multiworker": one of the workers TF_CONFIG lists.
    strategy: str = option("local", Choice(("local", "multiworker")))
    #: "fp32", "bf16" (weights, losses and metrics stay float32), or "auto": bf16 where the CPU
    #: has AMX for it (`models.precision`).
    precision: str = option("auto", Choice(PRECISIONS))

    def __post_init__(self) -> None:
        check_config(self)

    def with_recipe(self, recipe: Recipe) -> TrainConfig:
        """Fill every `None` recipe field from `recipe`."""
        filled = {f.name: getattr(recipe, f.name) for f in fields(Recipe) if getattr(self, f.name) is None}
        return replace(self, **filled)


@dataclass(frozen=True)
class InferenceConfig:
    """Batching for predict, scan and evaluate."""

    #: Model batches of 256 reach full speed on 2 cores; larger gains nothing.
    batch_size: int = 256
    #: Batches a loaded model scores at once, each on one thread (`Detector.load` has TensorFlow
    #: and onnxruntime run each operation on one thread): the small operations of 32x32 models
    #: gain little from being split across cores, whole batches side by side do (figures:
    #: docs/architecture.md, "Whole batches side by side").
    parallel_batches: int = os.cpu_count() or 1
    #: Batch size of probe models (a frozen encoder, ~60 ms of CPU per image): small batches
    #: keep every core busy on a handful of images and bound one call's latency.
    probe_batch_size: int = 4
    #: Decoding threads; the decoders release the GIL while decoding.
    workers: int = max(2, os.cpu_count() or 2)
    #: Unless `workers` is given, images that take less CPU than this to read and decode are
    #: decoded on the thread that lists them: GIL hand-offs to another would cost more than
    #: they save (figures: docs/architecture.md, "Small images are decoded on the listing thread").
    parallel_decode_above_s: float = 250e-6
    #: ... and that arrive within this (wall time per image, waits included): slower reads,
    #: as from network file systems, overlap on all `workers` threads whatever their CPU cost.
    parallel_read_above_s: float = 1e-3


@dataclass(frozen=True)
class ServeConfig:
    """What `fakelens serve` accepts and how it batches; every limit answers with a status."""

    #: A .keras or .onnx file, or a shipped model's name; None = the shipped default.
    model: str | None = None
    #: "keras" or "onnx" for a shipped name; None = the file's ending (keras for a name).
    backend: str | None = None
    #: Largest accepted file, in bytes (413 above it). 20 MB holds any camera JPEG.
    max_upload_bytes: int = option(20 * 1024 * 1024, Interval(ge=1))
    #: Most files in one request (413 above it).
    max_files: int = option(16, Interval(ge=1))
    #: Refused before decoding (422 above it).
    max_pixels: int = option(MAX_PIXELS, Interval(ge=1))
    #: Seconds to receive a request's body (408), to decode its files and read their evidence
    #: (a file not done by then is answered as timed out; 504 when no file was judged), and to
    #: get its scores (503).
    request_timeout_s: float = option(30.0, Interval(gt=0))
    #: Requests arriving within this window share one model call.
    batch_window_ms: float = option(5.0, Interval(ge=0))
    #: Most images in one model call.
    max_batch: int = option(128, Interval(ge=1))
    #: Origins allowed by CORS; empty = CORS off (same-origin only).
    cors_origins: tuple[str, ...] = ()
    #: Allow code inside the model file (Keras safe mode off).
    trust_model: bool = False

    def __post_init__(self) -> None:
        check_config(self)
