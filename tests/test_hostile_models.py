"""Hostile model files (tests/hostile_models.py): each refused with a `ModelLoadError` naming it,
by the Python API, the CLI (exit 2, one line, no traceback) and the server (it does not start),
within the time and memory a hostile image gets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, encode, random_image
from fastapi.testclient import TestClient
from hostile_models import CLASSES, ModelCase, good_onnx, seed_card
from typer.testing import CliRunner

from fakelens.cli import app
from fakelens.config import ServeConfig
from fakelens.errors import ModelLoadError
from fakelens.inference.detector import Detector, load_detector
from fakelens.models.card import ModelCard
from fakelens.models.limits import MAX_BATCH_PIXELS
from fakelens.serving.app import create_app

pytest.importorskip("onnx")
CASES = [(kind, case) for kind, make in CLASSES.items() for case in make()]
#: The bounds every refusal keeps (issue 19): seconds and bytes of peak RSS, per file.
MAX_SECONDS, MAX_RSS = 10.0, 1.5e9


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Every case written once: some take seconds to make."""
    root = tmp_path_factory.mktemp("hostile_models")
    for kind, _ in CASES:
        (root / kind).mkdir(exist_ok=True)
    for kind, case in CASES:
        case.write(root / kind)
    return root


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("image") / "a.jpg"
    path.write_bytes(encode(random_image(1)))
    return path


def refusal_of(path: Path) -> str:
    with pytest.raises(ModelLoadError) as caught:
        load_detector(path)
    return str(caught.value)


@pytest.mark.parametrize(("kind", "case"), CASES, ids=[f"{kind}-{case.name}" for kind, case in CASES])
def test_the_api_refuses_each_case_naming_the_file_and_the_reason(folder, kind, case: ModelCase):
    path = folder / kind / case.name
    message = refusal_of(path)
    assert message.startswith(f"{path}: ") and re.search(case.refusal, message), message
    assert "\n" not in message and len(message) < 1000, message


@pytest.mark.parametrize(("kind", "case"), CASES, ids=[f"{kind}-{case.name}" for kind, case in CASES])
def test_the_cli_exits_2_with_one_line_and_no_traceback(folder, image, kind, case: ModelCase):
    path = folder / kind / case.name
    result = CliRunner().invoke(app, ["predict", str(image), "--model", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {path}: ") and result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("kind", list(CLASSES))
def test_the_server_does_not_start_and_says_why_in_one_line(folder, kind):
    _, case = next((k, c) for k, c in CASES if k == kind)
    path = folder / kind / case.name
    server = create_app(ServeConfig(model=str(path)))
    with pytest.raises(ModelLoadError, match=re.escape(f"{path}: ")), TestClient(server):
        pass
    result = CliRunner().invoke(app, ["serve", "--model", str(path), "--port", "0"])
    assert result.exit_code == 2 and result.output.startswith(f"error: {path}: "), result.output
    assert result.output.count("\n") == 1


@pytest.mark.parametrize("suffix", [".keras", ".onnx", ".json"])
def test_a_fifo_named_as_a_model_is_refused_not_waited_on(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    os.mkfifo(path)
    with pytest.raises(ModelLoadError, match="no such model file"):
        load_detector(path)


def test_the_graph_the_cases_are_made_from_loads_and_scores(tmp_path):
    """The ONNX cases differ from this one in one thing each: that thing is what is refused."""
    path = tmp_path / "good.onnx"
    path.write_bytes(good_onnx())
    (record,) = load_detector(path).predict(encode(random_image(2)))
    assert record.error is None and 0 <= record.ai_probability <= 1


def test_the_shipped_cards_and_probe_are_within_bounds():
    for name in ("seed", "patchres"):
        assert load_detector(name, backend="onnx").card.input_size == (32, 32)
    from fakelens.models.probe import read_probe
    from fakelens.weights import WEIGHTS_DIR

    card, _, head = read_probe(WEIGHTS_DIR / "clipprobe.json")
    assert card.input_size == (224, 224) and len(head.coef) == 512


def test_cards_in_code_get_the_same_bounds_and_json_round_trips():
    card = ModelCard.from_dict(seed_card())
    assert ModelCard.from_json(card.to_json()) == card
    with pytest.raises(ValueError, match=r"input_size must be .*; received \(30000, 30000\)"):
        card.with_updates(input_size=(30000, 30000))


def test_a_large_input_gets_smaller_batches_not_more_memory():
    class Echo:
        def predict_on_batch(self, images: np.ndarray) -> np.ndarray:
            assert images[0].size <= 3 * MAX_BATCH_PIXELS
            return np.full((len(images), 1), 0.5)

    card = ModelCard.from_dict(seed_card(input_size=[1024, 1024]))
    detector = Detector(Echo(), card, batch_size=256)
    assert detector.batch_size == MAX_BATCH_PIXELS // (1024 * 1024) == 12
    assert Detector(Echo(), ModelCard.from_dict(seed_card())).batch_size == 256


MEASURE = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from fakelens.errors import ModelLoadError
    from fakelens.inference.detector import load_detector
    worst = 0.0
    for path in sorted(Path(sys.argv[1]).iterdir()):
        began = time.perf_counter()
        try:
            load_detector(path)
        except ModelLoadError:
            worst = max(worst, time.perf_counter() - began)
        else:
            raise SystemExit(f"{path} loaded")
    # This process's own peak: ru_maxrss would count the test process it was forked from.
    status = Path("/proc/self/status").read_text()
    peak = 1024 * int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
    print(json.dumps({"worst_seconds": worst, "peak_rss": peak}))
""")


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(CLASSES))
def test_each_class_is_refused_within_10_s_and_1_5_gb(folder, kind):
    """All of a class's files, loaded one after the other in a fresh process: the slowest
    refusal (the first pays for imports), and the process's peak RSS."""
    began = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-c", MEASURE, str(folder / kind)], cwd=REPO, capture_output=True, text=True
    )
    assert child.returncode == 0, child.stdout + child.stderr
    measured = json.loads(child.stdout)
    worst, peak = measured["worst_seconds"], measured["peak_rss"]
    print(
        f"{kind}: worst {worst:.2f} s, peak RSS {peak / 1e6:.0f} MB, all {time.perf_counter() - began:.1f} s"
    )
    assert worst <= MAX_SECONDS and peak <= MAX_RSS
