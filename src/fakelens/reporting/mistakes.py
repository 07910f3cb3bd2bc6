"""Heatmap tiles for reports: a run's most confident mistakes, a scan's most AI-like files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fakelens.data.layout import DisplayNameReader, kaggle_entries, open_source
from fakelens.errors import FakelensError, ImageDecodeError
from fakelens.inference.detector import Detector, load_detector
from fakelens.progress import progress_bar
from fakelens.record import Prediction

if TYPE_CHECKING:
    from fakelens.reporting.report import ReportOptions

#: A tile's overlay: 5.6 in at 110 dpi, about 600 px wide, each of its two panels about 240 px
#: and its text 15 px, so a page column of 420 px or more shows each panel at 170 px or more,
#: and never upscales it.
TILE_WIDTH = 5.6
TILE_DPI = 110


@dataclass(frozen=True)
class Tile:
    caption: str
    path: str
    png: bytes
    #: The verdict shown with the tile ("ai" or "real"): the scan's, or the model's on a mistake.
    label: str


def heatmap_tiles(
    detector: Detector, items: list[tuple[bytes, str, str, str]], notes: list[str]
) -> list[Tile]:
    """Overlays of (data, name, caption, label) items, each on its own colour scale (a faint map
    beside a strong one would be drawn blank on a shared one); an unreadable item gets a line in
    `notes` instead. Grad-CAM for Keras CNNs, occlusion for other models
    (`explain.heatmaps.choose_method`); the colour bar names the method and the map's range."""
    from fakelens.explain.heatmaps import explain, explanation_png

    tiles = []
    for data, name, caption, label in items:
        try:
            explanation = explain(detector, data, name=name)
        except ImageDecodeError as exc:
            notes.append(f"{exc.source}: no heatmap, {exc.reason}")
            continue
        tiles.append(
            Tile(
                caption,
                name,
                explanation_png(explanation, title=caption, dpi=TILE_DPI, width=TILE_WIDTH),
                label,
            )
        )
    return tiles


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
                    record.label,
                )
                for record, entry in wrong[: options.top]
            ]
            tiles = heatmap_tiles(detector, items, notes)
    except FakelensError as exc:
        return [], [f"Confident mistakes are not shown: {exc}"]
    summary = (
        f"{detector.name} on {len(records):,} test images drawn at random (seed {options.seed}) from {data}: "
        f"{len(wrong):,} wrong ({len(wrong) / max(len(records), 1):.1%}); the {len(tiles)} it was surest of, "
        "with the regions that raised its AI score (each map on its own colour scale)."
    )
    return tiles, [summary, *notes]


def most_ai_like(rows: list[dict[str, Any]], options: ReportOptions) -> tuple[list[Tile], list[str]]:
    """Tiles for scan rows (already ranked), re-read from where the scan found them."""
    from fakelens.explain.heatmaps import choose_method

    detector = _scan_detector(rows, options.model)
    notes = [
        f"Heatmaps by {detector.name} ({choose_method(detector)}), each on its own colour scale; "
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
                items.append((reader.read(row["path"]), row["path"], caption, row["label"]))
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
