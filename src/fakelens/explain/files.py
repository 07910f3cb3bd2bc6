"""`fakelens explain`: per image, the overlay PNG, the raw map (.npy) and a JSON record."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fakelens.data.layout import printable_name
from fakelens.errors import ImageDecodeError
from fakelens.evidence.attach import with_evidence
from fakelens.explain.heatmaps import colour_top, describe, explain, overlay_png, shown_image
from fakelens.fsutil import atomic_path, write_json_atomic
from fakelens.inference.detector import Detector
from fakelens.record import Prediction


@dataclass(frozen=True)
class Explained:
    """What was written for one input: its record (with evidence) and the files."""

    record: dict[str, Any]
    files: list[Path]


def explain_to_dir(
    detector: Detector,
    images: Sequence[Path],
    out_dir: Path,
    *,
    shared_scale: bool = False,
    method: str = "auto",
) -> Iterator[Explained | tuple[str, str]]:
    """For each image, write `<stem>.overlay.png`, `<stem>.heatmap.npy` and `<stem>.json` into
    `out_dir`; yield what was written, or (path, reason) for an image that could not be read.
    Names that are not UTF-8 are written as result files write them (`printable_name`).

    `method`: "gradcam", "occlusion" or "auto" (`explain.heatmaps.choose_method`). Each overlay
    spans its own map's range (`heatmaps.colour_top`); with `shared_scale`, all share one colour
    scale (the largest map value), so a faint map looks faint beside a strong one: every map is
    made (once: occlusion costs tens of model passes) and saved first, then the overlays are
    drawn from the saved maps.
    """
    stems: set[str] = set()
    mapped: list[tuple[Path, str, str, Prediction, dict[str, Any]]] = []
    for image in images:
        try:
            explanation = explain(detector, image, method=method)
        except ImageDecodeError as exc:
            yield printable_name(str(image)), exc.reason
            continue
        stem = _unique(printable_name(image.stem), stems)
        with atomic_path(out_dir / f"{stem}.heatmap.npy") as tmp:
            np.save(tmp, explanation.heatmap)
        verdict = Prediction(
            printable_name(str(image)), explanation.label, explanation.ai_probability, detector.name
        )
        record = {
            **verdict.to_dict(),
            "heatmap_method": explanation.method,
            "gradcam_layer": explanation.layer,
            "heatmap_max": float(explanation.heatmap.max()),
            "colour_scale_max": None,
            "overlay": f"{stem}.overlay.png",
            "heatmap": f"{stem}.heatmap.npy",
        }
        mapped.append((image, stem, describe(explanation), verdict, record))
    top = max((record["heatmap_max"] for *_, record in mapped), default=0.0)
    scale = (top or None) if shared_scale and len(images) > 1 else None
    for image, stem, title, verdict, record in mapped:
        overlay, raw_map, record_path = (
            out_dir / f"{stem}{end}" for end in (".overlay.png", ".heatmap.npy", ".json")
        )
        heat = np.load(raw_map)
        png = overlay_png(shown_image(image), heat, title=title, scale=scale, method=record["heatmap_method"])
        with atomic_path(overlay) as tmp:
            tmp.write_bytes(png)
        judged = with_evidence(verdict, image)
        record |= {
            "colour_scale_max": colour_top(heat, scale),
            "declared": judged.declared,
            "evidence": judged.evidence,
        }
        write_json_atomic(record_path, record)
        yield Explained(record, [overlay, raw_map, record_path])


def _unique(stem: str, taken: set[str]) -> str:
    """`stem`, or `stem-2`, `stem-3`... so that two inputs named alike never overwrite each other."""
    candidate, n = stem, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}"
    taken.add(candidate)
    return candidate
