"""A result record plus its file's metadata evidence: what `--evidence` and the API's
`?evidence=true` add beside the score, never into it."""

from __future__ import annotations

from dataclasses import replace

from fakelens.data.decode import ImageInput
from fakelens.evidence.declared import declaration
from fakelens.evidence.metadata import evidence_dicts
from fakelens.record import Prediction


def with_evidence(record: Prediction, data: ImageInput) -> Prediction:
    """`record` plus the evidence in `data`'s metadata ([] when unreadable) and what the file
    declares about how it was made."""
    found = evidence_dicts(data, name=record.path)
    return replace(record, evidence=found, declared=declaration(found))
