"""Evaluate a detector on the official test split and on the dedup test (leaked copies removed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fakelens.data.dataset import load_labelled, official_test_and_dedup_mask
from fakelens.evaluation.metrics import CLASS_ORDER, detection_metrics, roc_points
from fakelens.fsutil import write_json_atomic
from fakelens.inference import Detector


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]  # {"test": {...}, "dedup_test": {...}, "model": ..., "data_key": ...}
    out_dir: Path
    files: list[Path]


def evaluate(detector: Detector, data_path: Path, out_dir: Path, *, quiet: bool = False) -> Evaluation:
    """Score the test split once; report it whole and without images whose bytes occur in train."""
    from fakelens.reporting.plots import plot_confusion, plot_roc

    data = load_labelled(data_path, detector.card.input_size, quiet=quiet)
    test, dedup = official_test_and_dedup_mask(data)
    scores = detector.predict_batch(np.asarray(test.images))
    threshold = detector.card.threshold
    subsets = {"test": np.ones(len(scores), dtype=bool), "dedup_test": dedup}
    metrics: dict[str, Any] = {
        "model": detector.name,
        "data_key": data.key,
        "removed_as_leaked": int((~dedup).sum()),
        "undecodable_files": data.failures,
        **{
            name: detection_metrics(test.is_ai[mask], scores[mask], threshold)
            for name, mask in subsets.items()
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [
        plot_roc(
            {
                name: roc_points(test.is_ai[mask], scores[mask])
                for name, mask in subsets.items()
                if metrics[name]["auroc"] is not None  # a ROC needs both classes
            },
            out_dir / "roc.png",
        ),
        plot_confusion(
            np.array(metrics["test"]["confusion_matrix"]["counts"]),
            CLASS_ORDER,
            out_dir / "confusion.png",
            title=f"{detector.name} on the official test set",
        ),
    ]
    write_json_atomic(out_dir / "metrics.json", metrics)
    return Evaluation(metrics, out_dir, [out_dir / "metrics.json", *files])
