"""The light runtime installs and scans without TensorFlow: `pip install 'fakelens[onnx]'` into a
fresh virtual environment (no system packages), as a serving box would. Needs the network."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import partial

import pytest
from conftest import REPO, encode, random_image

pytestmark = [pytest.mark.slow, pytest.mark.install]
#: The fresh environment must see only what it installed, not this checkout's sources.
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
run = partial(subprocess.run, capture_output=True, text=True, env=ENV)


def test_the_onnx_extra_installs_without_tensorflow_and_scans(tmp_path):
    tree = tmp_path / "fakelens"
    shutil.copytree(REPO / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = run([venv / "bin" / "python", "-m", "pip", "install", "-q", f"{tree}[onnx]"])
    assert install.returncode == 0, install.stdout + install.stderr
    absent = run([venv / "bin" / "python", "-c", "import tensorflow"])
    assert "No module named 'tensorflow'" in absent.stderr

    images = tmp_path / "images"
    images.mkdir()
    for i in range(6):
        (images / f"{i}.jpg").write_bytes(encode(random_image(i, (48, 64))))
    fakelens = venv / "bin" / "fakelens"
    scan = run(
        [
            fakelens,
            "scan",
            images,
            "--model",
            "patchres",
            "--backend",
            "onnx",
            "--out",
            tmp_path / "r.csv",
            "-q",
        ]
    )
    assert scan.returncode == 0, scan.stdout + scan.stderr
    assert "Scored 6 of 6 images" in scan.stdout
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 7

    # A shipped name runs its ONNX export unless asked otherwise: no TensorFlow needed.
    by_name = run([fakelens, "scan", images, "--model", "patchres", "--out", tmp_path / "n.csv"])
    assert by_name.returncode == 0 and "Scored 6 of 6 images" in by_name.stdout
    keras = run(
        [fakelens, "scan", images, "-m", "patchres", "--backend", "keras", "--out", tmp_path / "k.csv"]
    )
    assert keras.returncode == 2 and "pip install 'fakelens[tf]'" in keras.stderr
