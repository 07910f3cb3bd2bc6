"""Evaluate a detector on the official test split and on the dedup test (leaked copies removed),
optionally under the robustness battery."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fakelens.config import InferenceConfig
from fakelens.data.dataset import load_labelled, official_test_and_dedup_mask
from fakelens.data.sources import dataset_name
from fakelens.evaluation.calibration import reliability
from fakelens.evaluation.metrics import CLASS_ORDER, detection_metrics, roc_points
from fakelens.evaluation.robustness import BATTERY, Transform
from fakelens.evaluation.sources import group_table
from fakelens.fsutil import write_json_atomic
from fakelens.inference.detector import Detector
from fakelens.progress import progress_bar


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]  # {"test": {...}, "dedup_test": {...}, "robustness": {...}, ...}
    out_dir: Path
    files: list[Path]


def evaluate(
    detector: Detector,
    data_path: Path,
    out_dir: Path,
    *,
    robustness: bool = False,
    reencode_quality: int | None = None,
    quiet: bool = False,
) -> Evaluation:
    """Score the test split once; report it whole and without images whose bytes occur in train.

    A set with no test split (a folder per source) is judged whole; per-source and
    per-generator figures are added where the set has several sources or names generators.
    `seen_in_training` flags a set judged whole that the model's card says it was trained on:
    its figures are then training figures (a probe model's run has the honest, leave-one-source-out ones).

    `reencode_quality` re-encodes every image as JPEG first (for sets whose classes differ in
    file format); `robustness` adds accuracy and AUROC under each transform of the battery.
    """
    from fakelens.plots import plot_confusion, plot_reliability, plot_roc

    data = load_labelled(
        data_path,
        detector.card.input_size,
        reencode_quality=reencode_quality,
        fit=detector.card.fit,
        quiet=quiet,
    )
    whole = not (data.splits == "test").any()  # a set of sources without a test split: judged whole
    test, dedup = (data, np.ones(len(data.names), bool)) if whole else official_test_and_dedup_mask(data)
    images = np.asarray(test.images)
    scores = detector.predict_proba(images)
    threshold = detector.card.threshold
    subsets = {"test": np.ones(len(scores), dtype=bool), "dedup_test": dedup}
    metrics: dict[str, Any] = {
        "model": detector.name,
        "data": str(data_path),
        "data_key": data.key,
        "reencoded_as_jpeg_quality": reencode_quality,
        "removed_as_leaked": int((~dedup).sum()),
        "undecodable_files": data.failures,
        "judged": "every image (no test split)" if whole else "the test split",
        "seen_in_training": whole
        and dataset_name(data_path) in map(dataset_name, detector.card.training.get("data", [])),
    }
    for name, mask in subsets.items():
        metrics[name] = detection_metrics(test.is_ai[mask], scores[mask], threshold)
    if len(set(test.sources.tolist())) > 1 or test.generators.any():
        metrics["by_source"] = group_table(test.is_ai, scores, test.sources, threshold)
        metrics["by_generator"] = group_table(test.is_ai, scores, test.generators, threshold)
    if robustness:
        metrics["robustness"] = robustness_battery(detector, images, test.is_ai, quiet=quiet)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = {
        name: roc_points(test.is_ai[mask], scores[mask])
        for name, mask in subsets.items()
        if metrics[name]["auroc"] is not None  # a ROC needs both classes
    }
    files = [
        plot_roc(curves, out_dir / "roc.png"),
        plot_confusion(
            np.array(metrics["test"]["confusion_matrix"]["counts"]),
            CLASS_ORDER,
            out_dir / "confusion.png",
            title=f"{detector.name} on the official test set",
        ),
        plot_reliability(reliability(test.is_ai, scores), out_dir / "reliability.png", title=detector.name),
    ]
    write_json_atomic(out_dir / "metrics.json", metrics)
    return Evaluation(metrics, out_dir, [out_dir / "metrics.json", *files])


def robustness_battery(
    detector: Detector,
    images: np.ndarray,
    is_ai: np.ndarray,
    battery: dict[str, Transform] = BATTERY,
    *,
    quiet: bool = False,
) -> dict[str, dict[str, float]]:
    """Accuracy and AUROC after each transform, the transformed image taking the normal path."""
    results = {}
    with (
        progress_bar("Robustness battery", len(battery) * len(images), quiet=quiet) as advance,
        ThreadPoolExecutor(InferenceConfig.workers) as pool,
    ):
        for name, transform in battery.items():
            prepared = np.stack(list(pool.map(lambda image, t=transform: detector.prepare(t(image)), images)))
            scores = detector.predict_proba(prepared)
            measured = detection_metrics(is_ai, scores, detector.card.threshold)
            results[name] = {"accuracy": measured["accuracy"], "auroc": measured["auroc"]}
            advance(len(images))
    return results
