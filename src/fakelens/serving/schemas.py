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
    ai_probability: float | None = Field(
        description="Calibrated probability that the image is AI-made, judged from the pixels alone."
    )
    model: str
    error: str | None = None
    declared: str | None = Field(
        default=None,
        description="What the file itself declares about how it was made, read with the evidence: "
        "null (nothing declared), or one line starting 'ai: ' or 'real: ' that names the source, e.g. "
        '"ai: PNG text (Stable Diffusion WebUI parameters)". Never merged into ai_probability.',
    )
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
        description="Base64 PNG: the image beside an overlay of the regions that raised the AI score."
    )
    heatmap_layer: str | None = Field(
        description="Grad-CAM: the layer whose activations the heatmap weighs; null for occlusion."
    )
    heatmap_method: Literal["gradcam", "occlusion"] | None = Field(
        default=None,
        description="How the heatmap was made: gradcam (Keras CNNs), or occlusion (any model: the fall "
        "in the AI logit when each region is blurred).",
    )


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
