"""Heatmap tiles for reports: a run's most confident mistakes, a scan's most AI-like files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fakelens.data.layout import DisplayNameReader, kaggle_entries, open_source
from fakelens.errors import FakelensError, ImageDecodeError
from fakelens.inference.detector import Detector, Prediction, load_detector
from fakelens.progress import progress_bar

if TYPE_CHECKING:
    from fakelens.reporting.report import ReportOptions

#: Tiles are drawn small: 840 px at 100 dpi becomes 420 px.
TILE_DPI = 50


@dataclass(frozen=True)
class Tile:
    caption: str
    path: str
    png: bytes


def heatmap_tiles(detector: Detector, items: list[tuple[bytes, str, str]], notes: list[str]) -> list[Tile]:
    """Small overlays of (data, name, caption) items on one colour scale, so that they compare;
    an unreadable item gets a line in `notes` instead. Grad-CAM for Keras CNNs, occlusion for
    other models (`explain.heatmaps.choose_method`); the colour bar names the method."""
    from fakelens.explain.heatmaps import explain, explanation_png

    explained = []
    for data, name, caption in items:
        try:
            explained.append((explain(detector, data, name=name), name, caption))
        except ImageDecodeError as exc:
            notes.append(f"{exc.source}: no heatmap, {exc.reason}")
    scale = max((float(e.heatmap.max()) for e, _, _ in explained), default=0.0) or None
    return [
        Tile(caption, name, explanation_png(e, title=caption, scale=scale, dpi=TILE_DPI))
        for e, name, caption in explained
    ]


def confident_mistakes(model: str, data: Path, options: ReportOptions) -> tuple[list[Tile], list[str]]:
    """Score a seeded sample of `options.sample` test images of a Kaggle-layout set; tiles for the
    `options.top` mistakes the model was most sure of, and notes saying what was done."""
    notes: list[str] = []
    try:
        detector = load_detector(model)
        with open_source(data) as source:
            tests = [e for e in kaggle_entries(source) if e.split == "test"]
            rng = np.random.default_rng(options.seed)
            chosen = [
                tests[i]
                for i in sorted(rng.choice(len(tests), min(options.sample, len(tests)), replace=False))
            ]
            names = [source.display_name(e.name) for e in chosen]
            stream = detector.score_stream(
                names, lambda i: detector.prepare(source.read(chosen[i].name), names[i])
            )
            records = []
            with progress_bar(
                f"Scoring {len(names):,} test images", len(names), quiet=options.quiet
            ) as advance:
                for batch in stream:
                    records += batch
                    advance(len(batch))
            wrong = [
                (record, entry)
                for record, entry in zip(records, chosen)
                if record.error is None and record.label != entry.label
            ]
            wrong.sort(key=lambda pair: -_confidence(pair[0]))
            items = [
                (
                    source.read(entry.name),
                    record.path,
                    f"truth {entry.label} · P(AI) {record.ai_probability:.3f}",
                )
                for record, entry in wrong[: options.top]
            ]
            tiles = heatmap_tiles(detector, items, notes)
    except FakelensError as exc:
        return [], [f"Confident mistakes are not shown: {exc}"]
    summary = (
        f"{detector.name} on {len(records):,} test images drawn at random (seed {options.seed}) from {data}: "
        f"{len(wrong):,} wrong ({len(wrong) / max(len(records), 1):.1%}); the {len(tiles)} it was surest of, "
        "with the regions that raised its AI score (one colour scale for all)."
    )
    return tiles, [summary, *notes]


def most_ai_like(rows: list[dict[str, Any]], options: ReportOptions) -> tuple[list[Tile], list[str]]:
    """Tiles for scan rows (already ranked), re-read from where the scan found them."""
    from fakelens.explain.heatmaps import choose_method

    detector = _scan_detector(rows, options.model)
    notes = [
        f"Heatmaps by {detector.name} ({choose_method(detector)}), one colour scale for all; "
        "scores as the scan recorded them."
    ]
    items = []
    with DisplayNameReader() as reader:
        for row in rows:
            try:
                caption = f"P(AI) {float(row['ai_probability']):.3f}"
                # What the file says of itself, beside the score: only the direction, as the
                # caption is drawn into the figure and the rest is text from the file.
                declared = str(row.get("declared") or "").split(":", 1)[0]
                if declared in ("ai", "real"):
                    caption += f" · declared {declared}"
                items.append((reader.read(row["path"]), row["path"], caption))
            except ImageDecodeError as exc:
                notes.append(f"{exc.source}: no heatmap, {exc.reason}")
    tiles = heatmap_tiles(detector, items, notes)
    return tiles, notes


def _scan_detector(rows: list[dict[str, Any]], model: str | None) -> Detector:
    """The model asked for, else the shipped model the scan used, else the default. Only a
    shipped model's name is taken from the results: they may name any file."""
    from fakelens.weights import DEFAULT_MODEL, shipped_models

    used = rows[0].get("model") or ""
    return load_detector(model or (used if used in shipped_models() else DEFAULT_MODEL))


def _confidence(record: Prediction) -> float:
    p = record.ai_probability or 0.0
    return p if record.label == "ai" else 1.0 - p
