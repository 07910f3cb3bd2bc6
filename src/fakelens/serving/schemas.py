"""Typed response bodies: they document the API at /docs and keep answers consistent."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Result(BaseModel):
    """One file's verdict; `error` says why a file could not be judged (then label is null)."""

    path: str = Field(description="The uploaded file's name.")
    label: Literal["ai", "real"] | None
    ai_probability: float | None = Field(description="Calibrated probability that the image is AI-made.")
    model: str
    error: str | None = None


class PredictResponse(BaseModel):
    model: str
    threshold: float = Field(description="label is 'ai' when ai_probability >= threshold.")
    results: list[Result]


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
