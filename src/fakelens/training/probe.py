"""Train a probe model: embed many sources once, fit a linear head, judge it by held-out source.

The encoder pass is the whole cost and is cached (`data.features`), so a killed run started
again with the same command picks up where it stopped, and later runs cost seconds. The head is
an L2-regularised logistic regression on the unit-length embedding, each (source, label) group
weighted equally, so that one large source cannot decide what "AI" looks like. Its temperature
and bias (Platt scaling) are fitted on leave-one-source-out scores: every
image scored by a head that never saw its source, as a new user's images will be.
"""

from __future__ import annotations

import itertools
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from fakelens.data.layout import open_source
from fakelens.data.sources import source_entries
from fakelens.errors import InvalidArgumentError, RunConfigError
from fakelens.evaluation.sources import LosoResult, group_table, leave_one_source_out
from fakelens.fsutil import run_dirs, write_json_atomic
from fakelens.models.backbones import load_backbone
from fakelens.models.probe import LinearHead, l2_normalised, probe_card, save_probe
from fakelens.training.features import EmbeddedSet, embed_entries


@dataclass(frozen=True)
class ProbeConfig:
    """What `fakelens train --model <probe>` does."""

    model: str = "clipprobe"
    backbone: str = "clip-vit-b16-int8"
    #: Random re-sized, re-encoded views of each training image (the judging view is extra).
    views: int = 1
    #: Inverse L2 strength of the logistic regression (on unit-length features).
    c: float = 10.0
    seed: int = 42
    runs_dir: Path = Path("runs/train")
    name: str | None = None
    #: Operating point on P(AI). Platt scaling with each (source, label) group weighted alike
    #: puts the point where a typical source's photos and AI images are told apart equally
    #: well at 0.5; 0.5 also lets the routed default share one label rule with `patchres`.
    threshold: float = 0.5
    #: Data sets: folders or zips (`data.sources`); every `test/` split stays out of training.
    data: tuple[Path, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        checks = {
            "views": self.views >= 1,
            "c": self.c > 0,
            "threshold": 0 <= self.threshold <= 1,
            "data": len(self.data) >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise InvalidArgumentError(f"{name} is out of range; received {name}={getattr(self, name)!r}")


def source_weights(is_ai: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Each (source, label) group sums to the same weight, and so does each class; mean 1."""
    groups = np.char.add(sources.astype(str), np.where(is_ai.astype(bool), "\0ai", "\0real"))
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse]
    for label in (0, 1):
        rows = is_ai == label
        if rows.any():
            weights[rows] /= weights[rows].sum()
    return weights * len(weights) / weights.sum()


def fit_head(features: np.ndarray, is_ai: np.ndarray, weights: np.ndarray, c: float) -> LinearHead:
    """Logistic regression on unit-length features; `features` may hold several views per row
    (N, V, D), each a sample with its row's label and weight."""
    views = features.shape[1] if features.ndim == 3 else 1
    x = l2_normalised(features.reshape(-1, features.shape[-1]))
    y, w = np.repeat(is_ai, views), np.repeat(weights, views)
    model = LogisticRegression(C=c, max_iter=5000).fit(x, y, sample_weight=w)
    return LinearHead(tuple(float(v) for v in model.coef_[0]), float(model.intercept_[0]))


def platt(logits: np.ndarray, is_ai: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """(scale, bias) with sigmoid(scale * logit + bias) calibrated on held-out-source scores."""
    model = LogisticRegression(C=1e6, max_iter=1000).fit(logits[:, None], is_ai, sample_weight=weights)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


@dataclass(frozen=True)
class ProbeRun:
    root: Path
    model: Path
    metrics: dict[str, Any]


def embed_data(config: ProbeConfig, *, quiet: bool = False) -> list[EmbeddedSet]:
    """Every data set's images through the backbone: the judging view and the training views."""
    backbone = load_backbone(config.backbone)
    sets = []
    for path in config.data:
        with open_source(path) as source:
            entries = source_entries(source)
            sets.append(
                embed_entries(source, entries, backbone, views=config.views, seed=config.seed, quiet=quiet)
            )
    return sets


def judge_by_source(train: EmbeddedSet, c: float) -> LosoResult:
    """Leave-one-source-out: heads fitted on the training views of the other sources score the
    held-out source's judging views."""
    is_ai, sources = train.is_ai, train.sources

    def fit(rows: np.ndarray):
        head = fit_head(train.features[rows, 1:], is_ai[rows], source_weights(is_ai[rows], sources[rows]), c)
        return lambda features: head.logits(features[:, 0])

    return leave_one_source_out(is_ai, sources, fit, train.features)


def train_probe(config: ProbeConfig, *, quiet: bool = False) -> ProbeRun:
    """Embed, judge by leave-one-source-out, fit the shipped head and calibrate it; write
    `runs/train/<name>/`: config.json, metrics.json, loso.md and model.json (the probe model)."""
    began = time.perf_counter()
    root = _run_root(config)
    write_json_atomic(root / "config.json", _jsonable(asdict(config)))
    sets = embed_data(config, quiet=quiet)
    data = merge(sets)
    split = np.array([e.split for e in data.entries])
    train_rows, test_rows = split == "train", split == "test"
    train = subset(data, train_rows)
    is_ai, sources = train.is_ai, train.sources
    weights = source_weights(is_ai, sources)
    loso = judge_by_source(train, config.c)
    scale, bias = platt(loso.scores, is_ai, weights)
    threshold = config.threshold
    head = fit_head(train.features[:, 1:], is_ai, weights, config.c)
    # Platt's bias joins the head's intercept, its scale becomes the card's temperature.
    head = LinearHead(head.coef, head.intercept + bias / scale)
    metrics = {
        "loso": loso_metrics(loso, is_ai, sources, threshold, train.generators),
        "calibration": {"temperature": 1 / scale, "bias": bias, "threshold": threshold},
        "train_images": int(train_rows.sum()),
        "train_sources": {s: int((sources == s).sum()) for s in np.unique(sources)},
        "failures": {name: reason for s in sets for name, reason in s.failures.items()},
        "seconds": time.perf_counter() - began,
        "versions": {"python": platform.python_version(), "numpy": np.__version__},
    }
    card = probe_card(
        config.name or config.model,
        config.backbone,
        threshold=threshold,
        temperature=1 / scale,
        metrics={},
        training={
            "data": [str(p) for p in config.data],
            "seed": config.seed,
            "views": config.views,
            "c": config.c,
        },
    )
    if test_rows.any():
        test = subset(data, test_rows)
        p = 1 / (1 + np.exp(-head.logits(test.features[:, 0]) / card.temperature))
        metrics["test"] = group_table(test.is_ai, p, test.sources, threshold)
    card = card.with_updates(metrics={"loso": metrics["loso"]["summary"], "test": metrics.get("test", {})})
    save_probe(root / "model.json", card, config.backbone, head)
    write_json_atomic(root / "metrics.json", _jsonable(metrics))
    (root / "loso.md").write_text(loso_markdown(metrics["loso"]), encoding="utf-8")
    return ProbeRun(root, root / "model.json", metrics)


def loso_metrics(
    loso: LosoResult, is_ai: np.ndarray, sources: np.ndarray, threshold: float, generators: np.ndarray
) -> dict[str, Any]:
    """Per-source AUROC (mean and worst partner), and accuracy at `threshold` with the
    calibration fitted without that source; per-generator detection rate likewise."""
    table = {}
    probability = np.empty(len(is_ai))
    for source, row in loso.sources.items():
        rows = sources == source
        scale, bias = platt(loso.scores[~rows], is_ai[~rows], source_weights(is_ai[~rows], sources[~rows]))
        probability[rows] = 1 / (1 + np.exp(-(scale * loso.scores[rows] + bias)))
        table[source] = {
            **row,
            "ai": int(is_ai[rows].sum()),
            "real": int((1 - is_ai[rows]).sum()),
            "accuracy": float(np.mean((probability[rows] >= threshold) == is_ai[rows].astype(bool))),
        }
    ai_rows = is_ai.astype(bool)
    return {
        "summary": loso.summary(),
        "sources": table,
        "generators": group_table(is_ai[ai_rows], probability[ai_rows], generators[ai_rows], threshold),
    }


def loso_markdown(loso: dict[str, Any]) -> str:
    lines = [
        "| held-out source | AI | real | AUROC (mean over partners) | worst partner | accuracy |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for source, row in loso["sources"].items():
        figure = "-" if row["auroc"] is None else f"{row['auroc']:.3f}"
        worst = row["worst_partner"]
        worst_text = "-" if worst is None else f"{worst} ({row['partners'][worst]:.3f})"
        lines.append(
            f"| {source} | {row['ai']} | {row['real']} | {figure} | {worst_text} | {row['accuracy']:.3f} |"
        )
    summary = loso["summary"]
    lines.append("")
    lines.append(
        f"Mean AUROC {summary['mean_auroc']:.3f} over {summary['sources']} sources; "
        f"worst {summary['worst_source']} {summary['worst_auroc']:.3f}."
    )
    lines += [
        "",
        "| generator (held out with its source) | images | detected at the threshold |",
        "| --- | ---: | ---: |",
    ]
    for generator, row in loso["generators"].items():
        lines.append(f"| {generator or '(not stated)'} | {row['images']} | {row['accuracy']:.3f} |")
    return "\n".join(lines) + "\n"


def merge(sets: list[EmbeddedSet]) -> EmbeddedSet:
    return EmbeddedSet(
        [e for s in sets for e in s.entries],
        np.concatenate([s.features for s in sets]),
        {k: v for s in sets for k, v in s.failures.items()},
    )


def subset(data: EmbeddedSet, rows: np.ndarray) -> EmbeddedSet:
    return EmbeddedSet([e for e, keep in zip(data.entries, rows) if keep], data.features[rows], data.failures)


def _run_root(config: ProbeConfig) -> Path:
    """runs/train/<name>, or <name>-2, -3... when a finished run (model.json) holds the name; an
    unfinished run of the same settings is continued (its features are cached)."""
    base = config.name or config.model
    wanted = _jsonable(asdict(config))
    for root in itertools.islice(run_dirs(config.runs_dir, base), 10_000):
        if (root / "model.json").exists():
            continue
        saved = root / "config.json"
        if saved.exists() and json.loads(saved.read_text(encoding="utf-8")) != wanted:
            raise RunConfigError(
                f"{root} holds an unfinished run with other settings; pass --name to start anew"
            )
        root.mkdir(parents=True, exist_ok=True)
        return root
    raise RunConfigError(f"too many runs named {base!r} in {config.runs_dir}")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
