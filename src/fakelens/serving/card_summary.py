"""The model card in plain words for the web page: what the model learned from, what it measured,
where it is weak.

Everything is read from the card's own records (`training`, `metrics`), so a model trained
here describes itself as a shipped one does. A loaded card is untrusted: a figure that is not
a number in range is left out, never shown.
"""

from __future__ import annotations

import numbers
from typing import Any

from fakelens.data.sources import dataset_name
from fakelens.models.card import ModelCard
from fakelens.serving.schemas import ModelSummary

#: The robustness battery's transforms (`evaluation.robustness.BATTERY`), by family (the key
#: before its last `_`: `blur_sigma1` is a blur), as people say them.
TRANSFORM_FAMILIES = {
    "jpeg": "JPEG re-compression",
    "down_up": "images shrunk and enlarged back",
    "blur": "blurred images",
    "noise": "noisy images",
    "upscaled": "enlarged images",
}
#: A transform is a weakness when it costs at least this much accuracy on the test set.
WEAK_DROP = 0.02
#: A model whose input is at most this many pixels a side (the CIFAKE models) shrinks any
#: larger image whole, and its scores on such images carry over poorly (docs/model-card.md).
SMALL_INPUT = 64


def summarize(card: ModelCard) -> ModelSummary:
    return ModelSummary(trained_on=trained_on(card), measured=measured(card), weak_on=weak_on(card))


def trained_on(card: ModelCard) -> str:
    """The data sets the training record names; a card without them is a CIFAKE model when it
    stretches images to its input (`ModelCard.fit`)."""
    data = card.training.get("data")
    if isinstance(data, list) and data and all(isinstance(path, str) for path in data):
        return " and ".join(dataset_name(path) for path in data)
    if card.fit == "stretch":
        return "CIFAKE (32x32-pixel CIFAR-10 photos and Stable Diffusion images)"
    return "data not recorded in its card"


def measured(card: ModelCard) -> list[str]:
    """Accuracy on held-out test data: the card's one test set, or each named test set."""
    test = card.metrics.get("test")
    if not isinstance(test, dict):
        return []
    sets = (
        {"its test set": test}
        if "accuracy" in test
        else {f"the {name} test set": v for name, v in test.items()}
    )
    lines = []
    for where, figures in sets.items():
        accuracy = _fraction(figures.get("accuracy")) if isinstance(figures, dict) else None
        if accuracy is None:
            continue
        count = figures.get("count", figures.get("images"))
        images = f" ({count:,} images)" if isinstance(count, int) and not isinstance(count, bool) else ""
        lines.append(f"{accuracy:.1%} accurate on {where}{images}")
    return lines


def weak_on(card: ModelCard) -> list[str]:
    """Larger images for a small-input model, sources it never saw (leave-one-source-out), and
    the robustness transforms that cost it accuracy, worst first."""
    lines = []
    height, width = card.input_size
    if card.fit == "stretch" and max(card.input_size) <= SMALL_INPUT:
        lines.append(
            f"photos larger than {height}x{width} pixels (shrunk whole to that size, their scores "
            "are weak evidence)"
        )
    loso = card.metrics.get("loso")
    if isinstance(loso, dict):
        lines.extend(_unseen_sources(loso))
    return lines + _transforms(card.metrics)


def _unseen_sources(loso: dict[str, Any]) -> list[str]:
    mean, worst = _fraction(loso.get("mean_auroc")), _fraction(loso.get("worst_auroc"))
    sources, worst_source = loso.get("sources"), loso.get("worst_source")
    if mean is None or not isinstance(sources, int):
        return []
    worst_part = (
        f"; {worst:.2f} on {worst_source}" if worst is not None and isinstance(worst_source, str) else ""
    )
    return [f"image sources it never saw (AUROC {mean:.2f} on average over {sources} held out{worst_part})"]


def _transforms(metrics: dict[str, Any]) -> list[str]:
    """Each family of transforms that lowers test accuracy by `WEAK_DROP` or more, with its
    worst accuracy, worst first."""
    test, battery = metrics.get("test"), metrics.get("robustness")
    clean = _fraction(test.get("accuracy")) if isinstance(test, dict) else None
    if clean is None or not isinstance(battery, dict):
        return []
    worst: dict[str, float] = {}
    for key, figures in battery.items():
        accuracy = _fraction(figures.get("accuracy")) if isinstance(figures, dict) else None
        family = str(key).rsplit("_", 1)[0]
        if accuracy is not None and accuracy <= clean - WEAK_DROP and family in TRANSFORM_FAMILIES:
            worst[family] = min(accuracy, worst.get(family, 1.0))
    ranked = sorted(worst.items(), key=lambda item: item[1])
    return [f"{TRANSFORM_FAMILIES[family]} ({accuracy:.0%} accurate)" for family, accuracy in ranked]


def _fraction(value: Any) -> float | None:
    """`value` when it is a real number from 0 to 1 (not a bool), else None."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    return None
