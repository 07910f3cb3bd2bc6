"""The command line, as a user runs it: output, files written, exit codes 0/1/2."""

from __future__ import annotations

import json
import shutil

import kagglehub
import numpy as np
import pytest
from clirun import run
from conftest import bomb_png, encode, random_image
from PIL import Image


def test_help_lists_every_command():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("predict", "scan", "train", "evaluate", "models", "data"):
        assert command in result.output
    assert all(c in run("data", "--help").output for c in ("info", "download", "show"))


def test_predict_prints_label_and_probability_and_exit_1_on_bad_file(seed_model_file, tmp_path):
    good = tmp_path / "good.jpg"
    good.write_bytes(encode(random_image(1)))
    result = run("predict", good, "--model", seed_model_file)
    assert result.exit_code == 0
    path, label, probability = result.output.strip().split("\t")
    assert path == str(good) and label in ("ai", "real") and 0 <= float(probability) <= 1
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    result = run("predict", good, bad, "--model", seed_model_file, "--json")
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.output.splitlines()]
    assert records[0]["error"] is None and "not a recognised image" in records[1]["error"]


def test_scan_reports_failures_finishes_the_rest_and_exits_1(seed_model_file, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i}.png").write_bytes(encode(random_image(i), "PNG"))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    out = tmp_path / "r.csv"
    result = run("scan", folder, "--out", out, "--model", seed_model_file, "-q")
    assert result.exit_code == 1
    assert "Scored 5 of 6 images" in result.output and f"Results saved to {out}" in result.output
    assert "broken.png" in result.output
    assert len(out.read_text().splitlines()) == 7


def test_usage_errors_exit_2_with_a_message(tmp_path, tiny_layout):
    result = run("train", "--model", "sead", "--data", tiny_layout, "--runs-dir", tmp_path)
    assert result.exit_code == 2 and "Did you mean 'seed'" in result.output
    result = run("predict", tmp_path / "x.jpg", "--model", tmp_path / "missing.keras")
    assert result.exit_code == 2 and "missing.keras" in result.output
    result = run("data", "info", tmp_path / "nowhere")
    assert result.exit_code == 2 and "no such folder or zip" in result.output


@pytest.mark.slow
def test_train_then_evaluate_through_the_cli(tiny_layout, tmp_path):
    result = run(
        "train",
        "--data",
        tiny_layout,
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--val-fraction",
        "0.25",
        "--runs-dir",
        tmp_path / "runs",
        "-q",
    )
    assert result.exit_code == 0, result.output
    model = tmp_path / "runs" / "seed" / "model.keras"
    assert f"Results saved to {model.parent}" in result.output
    result = run("evaluate", model, "--data", tiny_layout, "--out", tmp_path / "eval", "--robustness", "-q")
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "dedup_test" in result.output and "jpeg_q75" in result.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["test"]["count"] == 8 and 0 <= metrics["test"]["ece"] <= 1
    assert set(metrics["robustness"]) >= {"jpeg_q50", "blur_sigma1", "upscaled_256"}
    for name in ("roc.png", "confusion.png", "reliability.png"):
        assert (tmp_path / "eval" / name).is_file()

    calibrated = tmp_path / "calibrated.keras"
    result = run("calibrate", model, "--data", tiny_layout, "--threshold", "0.3", "--out", calibrated, "-q")
    assert result.exit_code == 0, result.output
    from fakelens.models.saving import read_card

    card = read_card(calibrated)
    assert card.threshold == 0.3 and card.temperature > 0 and card.metrics["val"]["count"] == 4
    assert read_card(model).training["seed"] == 42


def test_data_info_and_show(tiny_layout, tmp_path):
    result = run("data", "info", tiny_layout, "--json", "-q")
    assert result.exit_code == 0
    info = json.loads(result.output)
    assert info["counts"] == {"train": {"real": 8, "ai": 8}, "test": {"real": 4, "ai": 4}}
    assert "train" in run("data", "info", tiny_layout, "-q").output
    grid = tmp_path / "grid.png"
    result = run("data", "show", tiny_layout, "--out", grid, "--count", "6")
    assert result.exit_code == 0
    assert Image.open(grid).size[0] > 100


def test_data_download_uses_kagglehub(monkeypatch, tmp_path):
    calls = []

    def fake_download(handle, path=None, *, force_download=False, output_dir=None):
        calls.append((handle, output_dir))
        return str(tmp_path / "downloaded")

    monkeypatch.setattr(kagglehub, "dataset_download", fake_download)
    result = run("data", "download", "--to", tmp_path / "target")
    assert result.exit_code == 0
    assert calls == [("birdy654/cifake-real-and-ai-generated-synthetic-images", str(tmp_path / "target"))]
    assert str(tmp_path / "downloaded") in result.output


def test_data_download_failure_is_explained(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(kagglehub, "dataset_download", offline)
    result = run("data", "download")
    assert result.exit_code == 2
    assert "network unreachable" in result.output and "--data" in result.output


def test_models_lists_the_registry_and_shipped_models():
    result = run("models")
    assert result.exit_code == 0
    assert "The original notebook's CNN" in result.output and "auto (default: clipprobe" in result.output
    assert "clipprobe" in result.output and "clip-vit-b16-int8" in result.output


def test_data_info_reports_unreadable_files_and_exits_1(tiny_layout, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_layout, copy)
    (copy / "train" / "REAL" / "bomb.png").write_bytes(bomb_png())
    (copy / "test" / "FAKE" / "cut.jpg").write_bytes(encode(random_image(1))[:50])
    result = run("data", "info", copy, "-q")
    assert result.exit_code == 1
    assert "bomb.png" in result.output and "cut.jpg" in result.output


def test_metrics_table_shows_missing_values_as_dashes():
    from fakelens.cli.evaluate import metrics_table
    from fakelens.evaluation.metrics import detection_metrics

    one_class = detection_metrics(np.array([1, 1]), np.array([0.9, 0.2]), 0.5)
    table = metrics_table({"model": "m", "test": one_class})
    assert "-" in [cell for column in table.columns for cell in column._cells]


def test_scan_paths_from_stdin_with_the_onnx_backend_then_resume(tmp_path):
    paths = []
    for i in range(3):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(encode(random_image(i)))
        paths.append(str(path))
    out = tmp_path / "r.parquet"
    args = ("scan", "-", "--model", "seed", "--backend", "onnx", "--out", out, "-q")
    first = run(*args, input="\n".join(paths) + "\n")
    assert first.exit_code == 0 and "Scored 3 of 3 images" in first.output
    again = run(*args, input="\n".join(paths) + "\n")
    assert again.exit_code == 0 and "skipped: 3 file(s)" in again.output
    missing = run("scan", f"@{tmp_path / 'none.txt'}", "--out", tmp_path / "r.csv")
    assert missing.exit_code == 2 and "none.txt: cannot read the list of paths" in missing.output
