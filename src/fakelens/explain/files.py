"""`fakelens explain`: per image, the overlay PNG, the raw map (.npy) and a JSON record."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fakelens.errors import ImageDecodeError
from fakelens.explain.gradcam import describe, explain, heatmap, overlay_png
from fakelens.explain.metadata import evidence_dicts
from fakelens.fsutil import atomic_path, write_json_atomic
from fakelens.inference import Detector


@dataclass(frozen=True)
class Explained:
    """What was written for one input: its record (with evidence) and the files."""

    record: dict[str, Any]
    files: list[Path]


def explain_to_dir(
    detector: Detector, images: Sequence[Path], out_dir: Path, *, shared_scale: bool = True
) -> Iterator[Explained | tuple[str, str]]:
    """For each image, write `<stem>.overlay.png`, `<stem>.heatmap.npy` and `<stem>.json` into
    `out_dir`; yield what was written, or (path, reason) for an image that could not be read.

    With `shared_scale`, all overlays share one colour scale (a first pass finds the largest map
    value), so a faint map looks faint beside a strong one.
    """
    scale = common_scale(detector, images) if shared_scale and len(images) > 1 else None
    stems: set[str] = set()
    for image in images:
        try:
            explanation = explain(detector, image)
        except ImageDecodeError as exc:
            yield str(image), exc.reason
            continue
        stem = _unique(image.stem, stems)
        overlay, raw_map, record_path = (
            out_dir / f"{stem}{end}" for end in (".overlay.png", ".heatmap.npy", ".json")
        )
        with atomic_path(overlay) as tmp:
            png = overlay_png(
                explanation.image, explanation.heatmap, title=describe(explanation), scale=scale
            )
            tmp.write_bytes(png)
        with atomic_path(raw_map) as tmp:
            np.save(tmp, explanation.heatmap)
        record = {
            "path": str(image),
            "label": explanation.label,
            "ai_probability": explanation.ai_probability,
            "model": detector.name,
            "gradcam_layer": explanation.layer,
            "heatmap_max": float(explanation.heatmap.max()),
            "colour_scale_max": scale,
            "overlay": overlay.name,
            "heatmap": raw_map.name,
            "evidence": evidence_dicts(image),
        }
        write_json_atomic(record_path, record)
        yield Explained(record, [overlay, raw_map, record_path])


def common_scale(detector: Detector, images: Sequence[Path]) -> float | None:
    """The largest map value over the readable images (None if all maps are empty)."""
    tops = []
    for image in images:
        try:
            tops.append(float(heatmap(detector, image).max()))
        except ImageDecodeError:
            continue  # reported by the pass that writes
    return max(tops, default=0.0) or None


def _unique(stem: str, taken: set[str]) -> str:
    """`stem`, or `stem-2`, `stem-3`... so that two inputs named alike never overwrite each other."""
    candidate, n = stem, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}"
    taken.add(candidate)
    return candidate
