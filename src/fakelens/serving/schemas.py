"""Typed response bodies: they document the API at /docs and keep answers consistent."""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, Field, create_model

from fakelens.record import Prediction, description


class EvidenceItem(BaseModel):
    """One metadata finding; metadata is easy to strip or forge, so it is reported, not scored."""

    kind: str = Field(description="Where it was found: exif, png_text, xmp, c2pa.")
    key: str
    value: str
    points_to: Literal["ai", "real", "unknown"]
    strength: Literal["strong", "medium", "weak", "none"]


def _result_model() -> type[BaseModel]:
    """The API's `Result`: the result record's fields, types and descriptions
    (`record.Prediction`), with findings typed as `EvidenceItem`."""
    hints = get_type_hints(Prediction) | {"evidence": list[EvidenceItem] | None}
    return create_model(
        "Result",
        __doc__="One file's verdict; `error` says why a file could not be judged (then label is null).",
        **{
            f.name: (
                hints[f.name],
                Field(... if f.default is MISSING else f.default, description=description(f.name)),
            )
            for f in fields(Prediction)
        },
    )


Result = _result_model()


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


class ModelSummary(BaseModel):
    """The card in plain words, for people (the web page's header): read from its records."""

    trained_on: str = Field(description="The data the model learned from.")
    measured: list[str] = Field(description="What it measured on held-out data, one line each.")
    weak_on: list[str] = Field(description="Where it is known to be weak, worst first.")


class ModelInfo(BaseModel):
    name: str
    architecture: str
    input_size: tuple[int, int]
    threshold: float
    temperature: float
    metrics: dict[str, Any]
    training: dict[str, Any]
    summary: ModelSummary
    fakelens_version: str


class Problem(BaseModel):
    detail: str
