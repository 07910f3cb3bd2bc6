"""Probe models: training by source, the container shortcut, leave-one-source-out, detectors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import encode
from PIL import Image

from fakelens.data.decode import crop_to, decode_image
from fakelens.data.layout import open_source
from fakelens.data.sources import source_entries
from fakelens.evaluation.metrics import auroc
from fakelens.evaluation.sources import leave_one_source_out
from fakelens.inference.detector import load_detector
from fakelens.models.backbones import BackboneInfo, BackboneSpec, available_backbones, register_backbone
from fakelens.training.probe import ProbeConfig, fit_head, source_weights, train_probe

STATS = "pixel-stats"


class PixelStats:
    """A stand-in encoder that sees what a real one could: JPEG blockiness and brightness."""

    info = BackboneInfo(
        name=STATS,
        input_size=(48, 48),
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        features=3,
        version="test",
        sha256="0" * 64,
        licence="none",
        description="blockiness, brightness, constant",
    )

    def embed(self, images: np.ndarray) -> np.ndarray:
        grey = images.astype(np.float64).mean(axis=3) / 255.0
        steps = np.abs(np.diff(grey, axis=2))  # (N, H, W-1): step k is between columns k and k+1
        at_edges = steps[:, :, 7::8].mean(axis=(1, 2))
        inside = np.delete(steps, np.s_[7::8], axis=2).mean(axis=(1, 2))
        return np.stack([20 * (at_edges - inside), grey.mean(axis=(1, 2)), np.ones(len(images))], 1).astype(
            np.float32
        )


if STATS not in available_backbones():
    register_backbone(BackboneSpec(PixelStats.info, PixelStats))


def smooth_image(rng: np.random.Generator, brightness: float) -> np.ndarray:
    small = rng.normal(brightness, 40, (6, 6, 3)).clip(0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((48, 48), Image.Resampling.BICUBIC))


def write_set(
    root, *, ai_format: str, real_format: str, sources: int = 4, per_class: int = 30, seed: int = 0
):
    """<source>/REAL|FAKE/ images of one content distribution, AI a little brighter, each class
    in its own container: the container separates the classes perfectly, the pixels weakly."""
    rng = np.random.default_rng(seed)
    formats = {"JPEG": ("jpg", {"quality": 25}), "PNG": ("png", {})}
    for s in range(sources):
        for folder, fmt, brightness in (("FAKE", ai_format, 136), ("REAL", real_format, 120)):
            suffix, options = formats[fmt]
            (root / f"source{s}" / folder).mkdir(parents=True)
            for i in range(per_class):
                data = encode(smooth_image(rng, brightness), fmt, **options)
                (root / f"source{s}" / folder / f"{i}.{suffix}").write_bytes(data)
    return root


def test_sources_come_from_folders_or_a_manifest(tmp_path):
    root = write_set(tmp_path / "set", ai_format="PNG", real_format="JPEG", sources=2, per_class=2)
    with open_source(root) as source:
        entries = source_entries(source)
    assert {e.source for e in entries} == {"source0", "source1"}
    assert {(e.label, e.name.split("/")[1]) for e in entries} == {("ai", "FAKE"), ("real", "REAL")}
    (root / "manifest.csv").write_text("file,source,generator\nsource0/FAKE/0.png,elsewhere,GenX\n")
    with open_source(root) as source:
        renamed = {e.name: e for e in source_entries(source)}
    assert (renamed["source0/FAKE/0.png"].source, renamed["source0/FAKE/0.png"].generator) == (
        "elsewhere",
        "GenX",
    )
    assert renamed["source0/FAKE/1.png"].source == "source0"


def test_training_cannot_learn_the_container(tmp_path):
    """Trained where AI is PNG and real is JPEG, judged where it is the other way round: the
    pipeline's model still ranks by the pixels; one fitted on the files as they are inverts."""
    train_set = write_set(tmp_path / "train", ai_format="PNG", real_format="JPEG")
    swapped = write_set(tmp_path / "swapped", ai_format="JPEG", real_format="PNG", seed=1)
    run = train_probe(
        ProbeConfig(model="probe", backbone=STATS, data=(train_set,), views=2, runs_dir=tmp_path / "runs"),
        quiet=True,
    )
    detector = load_detector(run.model)
    with open_source(swapped) as source:
        entries = source_entries(source)
        paths = [source.path / e.name for e in entries]
        truth = np.array([e.label == "ai" for e in entries])
        pipeline = np.array([r.ai_probability for r in detector.predict(paths)])

        # The shortcut a pipeline without re-encoding would take: features of the files as they are.
        backbone = PixelStats()

        def as_files(path_list):
            return backbone.embed(np.stack([crop_to(decode_image(p), (48, 48)) for p in path_list]))

        with open_source(train_set) as train_source:
            train_entries = source_entries(train_source)
            naive = fit_head(
                as_files([train_source.path / e.name for e in train_entries]),
                np.array([e.label == "ai" for e in train_entries], np.uint8),
                np.ones(len(train_entries)),
                10.0,
            )
        shortcut = naive.logits(as_files(paths))
    assert auroc(truth, shortcut) < 0.2  # the test can fail: the container is learnable
    assert auroc(truth, pipeline) > 0.7  # ... and the pipeline did not learn it


def test_leave_one_source_out_holds_out_sources_and_pairs_classes():
    sources = np.array(["a"] * 4 + ["b"] * 4 + ["r"] * 4 + ["m"] * 4)
    is_ai = np.array([1] * 8 + [0] * 4 + [1, 1, 0, 0])
    features = np.arange(16, dtype=np.float64)[:, None]
    folds = []

    def fit(train):
        folds.append(frozenset(sources[train].tolist()))
        return lambda f: f[:, 0] * (1 if "a" in folds[-1] else -1)  # a head that remembers "a"

    result = leave_one_source_out(is_ai, sources, fit, features, min_images=1)
    # m has both classes: alone; a and b are paired with each source of real photos (r, m).
    assert sorted(map(sorted, folds)) == sorted(
        map(sorted, [{"a", "b", "r"}, {"b", "m"}, {"b", "r"}, {"a", "m"}, {"a", "r"}])
    )
    assert set(result.sources["a"]["partners"]) == {"r", "m"}
    assert set(result.sources["r"]["partners"]) == {"a", "b"}
    # Held out alone, m is scored by a head that saw a (sign +1): its AI (rows 12, 13) rank low.
    assert result.sources["m"]["partners"] == {"m": 0.0}
    # Held out with r, a is scored by a head that never saw a (sign -1): its AI rank above r's real.
    assert result.sources["a"]["partners"]["r"] == 1.0
    assert not np.isnan(result.scores).any()
    assert {s: row["auroc"] for s, row in result.sources.items()} == {"a": 1.0, "b": 0.0, "m": 0.0, "r": 0.5}
    assert result.summary() == {"mean_auroc": 0.375, "worst_source": "b", "worst_auroc": 0.0, "sources": 4}


def test_source_weights_give_each_group_the_same_weight():
    sources = np.array(["big"] * 90 + ["small"] * 10 + ["real"] * 50)
    is_ai = np.array([1] * 100 + [0] * 50)
    weights = source_weights(is_ai, sources)
    assert weights[sources == "big"].sum() == pytest.approx(weights[sources == "small"].sum())
    assert weights[is_ai == 1].sum() == pytest.approx(weights[is_ai == 0].sum())
    assert weights.mean() == pytest.approx(1.0)


def test_probe_run_writes_a_calibrated_model_and_the_loso_table(tmp_path):
    data = write_set(tmp_path / "set", ai_format="PNG", real_format="PNG", sources=3, per_class=12)
    run = train_probe(
        ProbeConfig(model="probe", backbone=STATS, data=(data,), runs_dir=tmp_path / "runs"), quiet=True
    )
    assert run.root == tmp_path / "runs" / "probe"
    metrics = json.loads((run.root / "metrics.json").read_text())
    assert set(metrics["loso"]["sources"]) == {"source0", "source1", "source2"}
    assert "Mean AUROC" in (run.root / "loso.md").read_text()
    detector = load_detector(run.model)
    assert detector.card.fit == "crop" and detector.card.temperature > 0
    assert 0 < detector.card.threshold < 1
    again = train_probe(
        ProbeConfig(model="probe", backbone=STATS, data=(data,), runs_dir=tmp_path / "runs"), quiet=True
    )
    assert again.root.name == "probe-2"  # a finished run is never overwritten


def test_probe_scores_do_not_depend_on_the_batch(tmp_path, clip_encoder):
    from fakelens.models.probe import LinearHead, probe_card, save_probe

    head = LinearHead(tuple(np.random.default_rng(0).normal(size=512)), 0.1)
    save_probe(tmp_path / "p.json", probe_card("p", "clip-vit-b16-int8"), "clip-vit-b16-int8", head)
    detector = load_detector(tmp_path / "p.json")
    images = [np.random.default_rng(i).integers(0, 256, (300, 200, 3), dtype=np.uint8) for i in range(3)]
    together = [r.ai_probability for r in detector.predict(images)]
    alone = [detector.predict(image)[0].ai_probability for image in images]
    assert together == alone


def test_evaluate_reports_per_source_and_warns_on_training_data(tmp_path):
    from test_cli import run

    data = write_set(tmp_path / "set", ai_format="PNG", real_format="PNG", sources=3, per_class=6)
    model = train_probe(
        ProbeConfig(model="probe", backbone=STATS, data=(data,), runs_dir=tmp_path / "runs"), quiet=True
    ).model
    result = run("evaluate", model, "--data", data, "--out", tmp_path / "eval", "-q")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["judged"] == "every image (no test split)" and metrics["seen_in_training"]
    assert {name: row["images"] for name, row in metrics["by_source"].items()} == {
        "source0": 12,
        "source1": 12,
        "source2": 12,
    }
    assert "Per source" in result.output and "trained on this data set" in result.output
