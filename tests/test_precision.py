"""Compute precision: auto picks from the CPU's flags; fp32 and bf16 both train and score."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clirun import run

from fakelens.config import TrainConfig
from fakelens.errors import InvalidArgumentError, RunConfigError
from fakelens.inference.detector import load_detector
from fakelens.models import create_model
from fakelens.models.precision import (
    bf16_unsupported,
    cpu_flags,
    model_precision,
    resolve_precision,
    with_precision,
)
from fakelens.models.saving import load_model
from fakelens.training.run import train

AMX = frozenset({"avx512f", "avx512_bf16", "amx_tile", "amx_bf16"})
AVX512_BF16 = frozenset({"avx512f", "avx512_bf16"})
NO_BF16 = frozenset({"avx2", "fma"})

#: Both paths; bf16 needs bf16 instructions, which this machine's CPU may lack.
BOTH = [
    "fp32",
    pytest.param("bf16", marks=pytest.mark.skipif(bool(bf16_unsupported()), reason=str(bf16_unsupported()))),
]


@pytest.mark.parametrize(
    ("requested", "flags", "resolved"),
    [
        ("auto", AMX, "bf16"),
        ("auto", AVX512_BF16, "fp32"),  # AVX-512 BF16 alone ran slower than float32 here
        ("auto", NO_BF16, "fp32"),
        ("fp32", AMX, "fp32"),
        ("bf16", AVX512_BF16, "bf16"),
    ],
)
def test_precision_resolves_from_the_cpu_flags(requested, flags, resolved):
    assert resolve_precision(requested, flags) == resolved


def test_forcing_bf16_without_bf16_instructions_is_refused_with_the_reason():
    with pytest.raises(InvalidArgumentError, match=r"precision bf16: this CPU has no bf16 instructions"):
        resolve_precision("bf16", NO_BF16)
    with pytest.raises(InvalidArgumentError, match=r"one of auto, fp32, bf16; received 'fp16'"):
        resolve_precision("fp16", AMX)
    with pytest.raises(InvalidArgumentError, match="precision"):
        TrainConfig(precision="half")


def test_cpu_flags_read_the_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nflags\t\t: fpu avx512_bf16 amx_bf16\n\nprocessor\t: 1\nflags\t: fpu\n"
    )
    assert cpu_flags(cpuinfo) == {"fpu", "avx512_bf16", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize("precision", BOTH)
def test_a_model_computes_in_its_precision_and_scores_in_float32(precision):
    model, _ = create_model("patchres", precision=precision)
    convolution = next(layer for layer in model.layers if layer.__class__.__name__ == "Conv2D")
    assert convolution.compute_dtype == {"fp32": "float32", "bf16": "bfloat16"}[precision]
    assert all(weight.dtype == "float32" for weight in model.weights)
    assert model.layers[-1].compute_dtype == "float32" and model_precision(model) == precision
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    scores = model.predict_on_batch(images)
    assert scores.dtype == np.float32
    back = with_precision(model, "fp32")
    fp32_scores = back.predict_on_batch(images)
    # bf16 keeps 8 significant bits through the network; the float32 head keeps scores apart.
    assert np.abs(scores - fp32_scores).max() < 0.02
    assert len(np.unique(fp32_scores)) == len(images)


@pytest.mark.slow
@pytest.mark.parametrize("precision", BOTH)
def test_training_runs_in_either_precision_and_saves_a_float32_model(tiny_layout, tmp_path, precision):
    config = TrainConfig(
        model="patchres",
        epochs=1,
        batch_size=8,
        val_fraction=0.25,
        runs_dir=tmp_path / "runs",
        precision=precision,
    )
    result = train(config, tiny_layout, quiet=True)
    assert result.card.training["precision"] == precision
    assert json.loads(result.run.config.read_text())["precision"] == precision
    assert np.isfinite(result.history["loss"]).all() and np.isfinite(result.history["val_loss"]).all()
    checkpoint, _ = load_model(result.run.checkpoint(1))
    assert model_precision(checkpoint) == precision  # resumes as it trained
    saved, _ = load_model(result.run.model)
    assert model_precision(saved) == "fp32"  # runs anywhere


@pytest.mark.slow
def test_an_unfinished_run_resumes_only_in_its_own_precision(tiny_layout, tmp_path):
    config = TrainConfig(
        epochs=1, batch_size=8, val_fraction=0.25, runs_dir=tmp_path / "runs", precision="fp32"
    )
    result = train(config, tiny_layout, quiet=True)
    result.run.model.unlink()
    recorded = json.loads(result.run.config.read_text())
    result.run.config.write_text(json.dumps({**recorded, "precision": "bf16"}))
    with pytest.raises(RunConfigError, match=r"precision: 'bf16' -> 'fp32'"):
        train(config, tiny_layout, quiet=True)
    del recorded["precision"]  # a run recorded before precision existed trained in float32
    result.run.config.write_text(json.dumps(recorded))
    assert train(config, tiny_layout, quiet=True).resumed_from_epoch == 1


@pytest.mark.parametrize("precision", BOTH)
def test_a_keras_detector_scores_in_the_precision_asked(seed_model_file, precision):
    detector = load_detector(seed_model_file, precision=precision)
    assert model_precision(detector.model) == precision
    images = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    reference = load_detector(seed_model_file, precision="fp32").predict_proba(images)
    assert np.abs(detector.predict_proba(images) - reference).max() < 0.02


def test_bf16_is_refused_for_an_onnx_graph():
    with pytest.raises(InvalidArgumentError, match=r"seed\.onnx: precision bf16 applies to \.keras models"):
        load_detector("seed", backend="onnx", precision="bf16")


@pytest.mark.parametrize("precision", BOTH)
def test_the_commands_take_precision(seed_model_file, tiny_layout, tmp_path, precision):
    image = next((tiny_layout / "test" / "REAL").iterdir())
    predicted = run("predict", image, "--model", seed_model_file, "--precision", precision)
    assert predicted.exit_code == 0 and predicted.output.startswith(str(image))
    scanned = run(
        "scan",
        tiny_layout / "test",
        "--model",
        seed_model_file,
        "--precision",
        precision,
        "--out",
        tmp_path / "scan.csv",
        "--quiet",
    )
    assert scanned.exit_code == 0 and len((tmp_path / "scan.csv").read_text().splitlines()) == 9
    refused = run("predict", image, "--model", "seed", "--backend", "onnx", "--precision", "bf16")
    assert refused.exit_code == 2 and "precision bf16 applies to .keras models" in refused.output
    unknown = run("evaluate", seed_model_file, "--data", tiny_layout, "--precision", "fp8")
    assert unknown.exit_code == 2 and "one of auto, fp32, bf16; received 'fp8'" in unknown.output
