"""Judging a detector by source: per-source and per-generator figures, leave-one-source-out.

A real-world model must be judged on sources it never saw: an image-level split of a
multi-source set measures memorised sources (their subjects, styles, cameras), not detection.
Most sources hold one class, and a threshold-free figure needs both, so each source is held
out together with a partner of the other class, and both are scored by a head fitted without
either: an AI-only source is paired in turn with every source that has real photos (and the
other way round); a source with both classes is held out alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fakelens.evaluation.metrics import auroc

#: Fits a scorer on the rows given (a boolean mask over the data set): what one fold trains.
FitFold = Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]]


def group_table(
    is_ai: np.ndarray, scores: np.ndarray, groups: np.ndarray, threshold: float
) -> dict[str, dict[str, Any]]:
    """group -> images, AI and real counts, accuracy at `threshold`, AUROC (None: one class)."""
    table = {}
    for group in sorted(set(groups.tolist())):
        rows = groups == group
        truth, score = is_ai[rows], scores[rows]
        table[group] = {
            "images": int(rows.sum()),
            "ai": int(truth.sum()),
            "real": int((1 - truth).sum()),
            "accuracy": float(np.mean((score >= threshold) == truth.astype(bool))),
            "auroc": auroc(truth, score),
        }
    return table


@dataclass
class LosoResult:
    """Every image's score from heads that never saw its source, and the per-source figures."""

    #: Mean held-out score per image (logit units of the folds' heads).
    scores: np.ndarray
    #: source -> {"partners": {partner: AUROC}, "auroc": mean over partners, "worst_partner": ...}
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        figures = {source: row["auroc"] for source, row in self.sources.items() if row["auroc"] is not None}
        worst = min(figures, key=figures.get) if figures else None
        return {
            "mean_auroc": float(np.mean(list(figures.values()))) if figures else None,
            "worst_source": worst,
            "worst_auroc": figures.get(worst) if worst else None,
            "sources": len(figures),
        }


def leave_one_source_out(
    is_ai: np.ndarray, sources: np.ndarray, fit: FitFold, features: np.ndarray, *, min_images: int = 5
) -> LosoResult:
    """Hold out each source (with a partner of the other class where it has one class), fit on
    the rest with `fit(train_mask)`, score the held-out images with `features`' rows.

    Sources with fewer than `min_images` images are still left out of the folds that hold them,
    scored, and reported, but get no AUROC of their own (too few to rank).
    """
    is_ai = np.asarray(is_ai).astype(bool)
    names = sorted(set(sources.tolist()))
    has_ai = {s: bool(is_ai[sources == s].any()) for s in names}
    has_real = {s: bool((~is_ai[sources == s]).any()) for s in names}
    totals = np.zeros(len(is_ai))
    counts = np.zeros(len(is_ai))
    partners: dict[str, dict[str, float | None]] = {s: {} for s in names}

    def fold(held: tuple[str, ...], scored: np.ndarray) -> float | None:
        train = ~np.isin(sources, held)
        scores = fit(train)(features[scored])
        totals[scored] += scores
        counts[scored] += 1
        return auroc(is_ai[scored], scores)

    for source in names:
        rows = sources == source
        if has_ai[source] and has_real[source]:
            partners[source][source] = fold((source,), rows)
    for ai_source in (s for s in names if has_ai[s] and not has_real[s]):
        for real_source in (s for s in names if has_real[s] and s != ai_source):
            scored = ((sources == ai_source) & is_ai) | ((sources == real_source) & ~is_ai)
            figure = fold((ai_source, real_source), scored)
            partners[ai_source][real_source] = figure
            if not has_ai[real_source]:
                partners[real_source][ai_source] = figure
    result = LosoResult(np.where(counts > 0, totals / np.maximum(counts, 1), np.nan))
    for source in names:
        figures = {p: f for p, f in partners[source].items() if f is not None}
        enough = int((sources == source).sum()) >= min_images and figures
        result.sources[source] = {
            "images": int((sources == source).sum()),
            "partners": figures,
            "auroc": float(np.mean(list(figures.values()))) if enough else None,
            "worst_partner": min(figures, key=figures.get) if enough else None,
        }
    return result
