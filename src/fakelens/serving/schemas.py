"""Typed response bodies: they document the API at /docs and keep answers consistent."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class EvidenceItem(BaseModel):
    """One metadata finding; metadata is easy to strip or forge, so it is reported, not scored."""

    kind: str = Field(description="Where it was found: exif, png_text, xmp, c2pa.")
    key: str
    value: str
    points_to: Literal["ai", "real", "unknown"]
    strength: Literal["strong", "medium", "weak", "none"]


class Result(BaseModel):
    """One file's verdict; `error` says why a file could not be judged (then label is null)."""

    path: str = Field(description="The uploaded file's name.")
    label: Literal["ai", "real"] | None
    ai_probability: float | None = Field(description="Calibrated probability that the image is AI-made.")
    model: str
    error: str | None = None
    evidence: list[EvidenceItem] | None = Field(
        default=None,
        description="Metadata findings, when asked for (?evidence=true) and on /v1/explain.",
    )


class PredictResponse(BaseModel):
    model: str
    threshold: float = Field(description="label is 'ai' when ai_probability >= threshold.")
    results: list[Result]


class ExplainResponse(BaseModel):
    model: str
    threshold: float
    result: Result
    heatmap_png: str | None = Field(
        description="Base64 PNG: the image beside a Grad-CAM overlay of the regions that raised the AI score."
    )
    heatmap_layer: str | None = Field(description="The layer whose activations the heatmap weighs.")


class ModelInfo(BaseModel):
    name: str
    architecture: str
    input_size: tuple[int, int]
    threshold: float
    temperature: float
    metrics: dict[str, Any]
    training: dict[str, Any]
    fakelens_version: str


class Problem(BaseModel):
    detail: str
