"""Figures as PNG files, written atomically, with a headless backend.

Drawing is quiet: matplotlib's warnings while it draws (a font without a glyph of a title's text,
and the like) change nothing in the figure, and would only clutter a command's stderr.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from fakelens.fsutil import atomic_path


def _draw(figure: Figure, target: Path | io.BytesIO, dpi: float | str) -> None:
    """Save `figure` as PNG without matplotlib's warnings (see the module docstring)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figure.savefig(target, format="png", dpi=dpi, bbox_inches="tight")


def save_figure(figure: Figure, path: Path) -> Path:
    try:
        with atomic_path(path) as tmp:
            _draw(figure, tmp, dpi=120)
    finally:
        plt.close(figure)
    return path


def plot_history(history: dict[str, list[float]], out_dir: Path) -> list[Path]:
    """loss.png and accuracy.png: training and validation curves per epoch."""
    written = []
    for metric in ("loss", "accuracy"):
        if metric not in history:
            continue
        figure, axis = plt.subplots(figsize=(6, 4))
        epochs = np.arange(1, len(history[metric]) + 1)
        axis.plot(epochs, history[metric], marker="o", label="train")
        if f"val_{metric}" in history:
            axis.plot(epochs, history[f"val_{metric}"], marker="o", label="validation")
        axis.set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch")
        axis.grid(alpha=0.3)
        axis.legend()
        written.append(save_figure(figure, out_dir / f"{metric}.png"))
    return written


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path: Path) -> Path:
    """ROC curves for "ai" as the positive class; `curves` maps a name to (fpr, tpr, auroc)."""
    figure, axis = plt.subplots(figsize=(5, 5))
    for name, (fpr, tpr, auroc) in curves.items():
        axis.plot(fpr, tpr, label=f"{name} (AUROC {auroc:.4f})")
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    axis.set(
        xlabel="false positive rate (real flagged as AI)",
        ylabel="true positive rate (AI caught)",
        title="ROC",
    )
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    return save_figure(figure, path)


def plot_confusion(
    matrix: np.ndarray, labels: Sequence[str], path: Path, title: str = "Confusion matrix"
) -> Path:
    """Counts with row-normalised shading; rows are the truth, columns the prediction."""
    matrix = np.asarray(matrix)
    figure, axis = plt.subplots(figsize=(4.5, 4))
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, col), count in np.ndenumerate(matrix):
        axis.text(
            col,
            row,
            f"{count:,}\n{shares[row, col]:.1%}",
            ha="center",
            va="center",
            color="white" if shares[row, col] > 0.5 else "black",
        )
    axis.set_xticks(range(len(labels)), labels)
    axis.set_yticks(range(len(labels)), labels)
    axis.set(xlabel="predicted", ylabel="true", title=title)
    return save_figure(figure, path)


def plot_image_grid(images: np.ndarray, captions: Sequence[str], path: Path, columns: int = 8) -> Path:
    """A grid of images, each titled with its caption (the notebook's batch view)."""
    rows = max(1, math.ceil(len(images) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.4, rows * 1.6))
    for axis in np.ravel(axes):
        axis.axis("off")
    for axis, image, caption in zip(np.ravel(axes), images, captions):
        axis.imshow(image, interpolation="nearest")
        axis.set_title(caption, fontsize=8)
    return save_figure(figure, path)


def plot_reliability(bins: dict, path: Path, title: str = "") -> Path:
    """Reliability diagram: accuracy against confidence per bin, with the ECE in the title."""
    figure, axis = plt.subplots(figsize=(5, 5))
    counts = np.asarray(bins["counts"])
    used = counts > 0
    confidence = np.asarray(bins["confidence"])[used]
    accuracy = np.asarray(bins["accuracy"])[used]
    width = (bins["edges"][1] - bins["edges"][0]) * 0.9
    axis.bar(confidence, accuracy, width=width, alpha=0.7, label="accuracy in bin")
    axis.plot([0.5, 1], [0.5, 1], linestyle="--", color="grey", label="perfect calibration")
    axis.set(
        xlabel="confidence of the predicted label",
        ylabel="accuracy",
        xlim=(0.5, 1.0),
        ylim=(0.0, 1.0),
        title=f"{title} reliability (ECE {bins['ece']:.4f}, {bins['bins']} bins)".strip(),
    )
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left")
    return save_figure(figure, path)


def figure_png(figure: Figure, dpi: int | None = None) -> bytes:
    """A figure as PNG bytes (for reports and the HTTP server), closed afterwards."""
    buffer = io.BytesIO()
    try:
        _draw(figure, buffer, dpi=dpi or "figure")
    finally:
        plt.close(figure)
    return buffer.getvalue()


#: Bin counts that span this factor or more (largest over smallest non-empty bin) get a log axis.
LOG_COUNT_SPAN = 100


def score_histogram(ai_probability: np.ndarray, bins: int = 20) -> Figure:
    """How a scan's scores spread over 0..1, as wide as a report page (about 1,120 px).

    The count axis is linear, where bar heights read as counts (on a log axis 1 and 3 look alike);
    it is logarithmic only when the bins' counts span two orders of magnitude (`LOG_COUNT_SPAN`),
    so that a dozen files beside thousands are still seen, and then says so."""
    counts, edges = np.histogram(ai_probability, bins=np.linspace(0, 1, bins + 1))
    figure, axis = plt.subplots(figsize=(11.2, 3.4), layout="constrained")
    axis.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#c0392b", edgecolor="white")
    axis.set(
        xlabel="ai_probability", xlim=(0, 1), title=f"Scores of {len(ai_probability):,} files", ylabel="files"
    )
    used = counts[counts > 0]
    if len(used) and used.max() >= LOG_COUNT_SPAN * used.min():
        axis.set(yscale="log", ylim=(0.5, None), ylabel="files (log scale)")  # a bin of 1 shows
    else:
        axis.yaxis.get_major_locator().set_params(integer=True)
    axis.grid(alpha=0.3)
    return figure
