"""One exception type per failure kind, each naming the input and the fix."""

from __future__ import annotations


class FakelensError(Exception):
    """Base class: every error fakelens raises on purpose derives from it."""


class ImageDecodeError(FakelensError):
    """An image could not be read or decoded; `source` names the file, `reason` says why."""

    def __init__(self, source: object, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class InvalidArgumentError(FakelensError, ValueError):
    """An option or argument outside its allowed values; the message echoes what was received."""


class DatasetLayoutError(FakelensError):
    """A data path is missing or not laid out as `train|test/REAL|FAKE`."""


class ModelLoadError(FakelensError):
    """A model file or name could not be loaded."""


class RunConfigError(FakelensError):
    """A training run directory holds a run that the current command cannot continue."""


class DownloadError(FakelensError):
    """Fetching a data set failed."""
