"""Measure how a 32x32 model should judge larger images: whole-image resize, or the mean logit
of native-resolution 32x32 crops. Run on the *train* half of sd-unsplash only (its test half is
for reporting), every image re-encoded as JPEG q90 first so that the container says nothing.

    python scripts/large_image_strategy.py MODEL ../shared/data/sd-unsplash/sd-unsplash.zip
"""

from __future__ import annotations

import json
import sys

import numpy as np

from fakelens.data.decode import decode_image, reencode_jpeg, resize_to
from fakelens.data.layout import kaggle_entries, open_source
from fakelens.evaluation.metrics import detection_metrics
from fakelens.inference.detector import load_detector
from fakelens.models.card import logit

GRID = 4  # 4 x 4 = 16 crops spread evenly over the image


def crops(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    height, width = image.shape[:2]
    ys = np.linspace(0, height - size[0], GRID).round().astype(int)
    xs = np.linspace(0, width - size[1], GRID).round().astype(int)
    return np.stack([image[y : y + size[0], x : x + size[1]] for y in ys for x in xs])


def main(model: str, data: str) -> None:
    detector = load_detector(model)
    size = detector.card.input_size
    whole, tiled, truth = [], [], []
    with open_source(data) as source:
        for entry in (e for e in kaggle_entries(source) if e.split == "train"):
            image = decode_image(reencode_jpeg(source.read(entry.name), 90))
            whole.append(resize_to(image, size))
            scores = detector.predict_proba(crops(image, size))
            tiled.append(1 / (1 + np.exp(-logit(scores).mean())))
            truth.append(entry.label == "ai")
    truth_arr = np.array(truth)
    threshold = detector.card.threshold
    scores = {"resize": detector.predict_proba(np.stack(whole)), "crops_mean_logit": np.array(tiled)}
    results = {"images": len(truth)}
    for name, score in scores.items():
        measured = detection_metrics(truth_arr, score, threshold)
        results[name] = {"accuracy": measured["accuracy"], "auroc": measured["auroc"]}
        print(f"{name:>17}: accuracy {measured['accuracy']:.4f}  AUROC {measured['auroc']:.4f}")
    print(json.dumps(results))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
