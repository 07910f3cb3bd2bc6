"""The result record: one file's verdict, as every output carries it.

This module is its one owner. `Prediction` is what `Detector.predict` returns; result files
(`scanning.results`: CSV, JSONL, Parquet, and their reader), the HTTP API's schema
(`serving.schemas.Result`), the report and `explain`'s JSON files all take their fields, types
and descriptions from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal


def _doc(text: str) -> dict[str, str]:
    return {"description": text}


@dataclass(frozen=True)
class Prediction:
    """One file's verdict; `error` says why it could not be judged (then label and
    ai_probability are None)."""

    path: str = field(metadata=_doc("The file's name, as given (bytes that are not UTF-8 as \\xNN)."))
    label: Literal["ai", "real"] | None = field(
        metadata=_doc("ai when ai_probability >= the model's threshold.")
    )
    ai_probability: float | None = field(
        metadata=_doc("Calibrated probability that the image is AI-made, judged from the pixels alone.")
    )
    model: str = field(metadata=_doc("The model that judged it."))
    error: str | None = field(default=None, metadata=_doc("null, or why the file could not be judged."))
    declared: str | None = field(
        default=None,
        metadata=_doc(
            "What the file itself declares about how it was made, read with the evidence: null "
            "(nothing declared), or one line starting 'ai: ' or 'real: ' that names the source, "
            'e.g. "ai: PNG text (Stable Diffusion WebUI parameters)". Never merged into '
            "ai_probability."
        ),
    )
    evidence: list[dict[str, str]] | None = field(
        default=None,
        metadata=_doc("Metadata findings (kind, key, value, points_to, strength), only when asked for."),
    )

    def to_dict(self) -> dict[str, Any]:
        """The record; `declared` then `evidence` appear only when evidence was asked for."""
        record = dict(self.__dict__)  # dataclasses.asdict deep-copies: 10x slower
        if self.evidence is None:
            del record["evidence"], record["declared"]
        return record


#: Every record's fields, in the order files write them.
FIELDS = tuple(f.name for f in fields(Prediction))[:5]
#: The fields evidence adds: what the file declares, then its findings (JSON text in CSV and Parquet).
EVIDENCE_FIELDS = ("declared", "evidence")
#: What result files add to each record: the file's size and modification time, the resume key.
FILE_FIELDS = ("size", "modified")
#: A result file's columns without evidence.
COLUMNS = FIELDS + FILE_FIELDS


def description(name: str) -> str:
    """A field's description, for the API's schema and the docs."""
    return next(f.metadata["description"] for f in fields(Prediction) if f.name == name)


def arrow_schema(columns: tuple[str, ...] = COLUMNS) -> Any:
    """The Arrow types of result rows (Parquet output, the Ray engine's part files)."""
    import pyarrow as pa

    types = {"ai_probability": pa.float64(), "size": pa.int64()}
    return pa.schema([(column, types.get(column, pa.string())) for column in columns])
